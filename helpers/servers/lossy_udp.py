"""A UDP relay that loses, duplicates and reorders datagrams, deterministically.

    relay = netlab.serve(lossy_udp_relay, server_port, 7)   # seed 7; defaults for the rates
    sock.sendto(b"ping 0", ("127.0.0.1", relay.port))       # instead of the server's port

Clients send to the relay; it forwards to ``127.0.0.1:target_port`` and sends the replies
back to the client that spoke last. Each datagram's fate is decided by ``fate()`` from the
seed, the direction and the datagram's number in that direction, never from timing: the
same seed and the same traffic give the same losses on every run and every machine.

Fates: "pass"; "drop" (lost); "duplicate" (sent twice); "hold" (kept back and sent right
after the next datagram in the same direction: the two arrive swapped). A held datagram
with no successor stays held: to the receiver it is lost.
Bounds: ``recvfrom`` waits at most ``POLL`` s at a time; ``srv.stop()`` ends the relay.
"""

import random
import socket

POLL = 0.5
CLIENT_TO_SERVER = "client->server"
SERVER_TO_CLIENT = "server->client"


def fate(
    seed: int,
    direction: str,
    number: int,
    loss: float = 0.2,
    duplicate: float = 0.1,
    reorder: float = 0.1,
) -> str:
    """What happens to datagram ``number`` (0, 1, ...) going in ``direction``. Pure."""
    r = random.Random(f"{seed}/{direction}/{number}").random()
    if r < loss:
        return "drop"
    if r < loss + duplicate:
        return "duplicate"
    if r < loss + duplicate + reorder:
        return "hold"
    return "pass"


def lossy_udp_relay(
    port: int,
    target_port: int,
    seed: int = 0,
    loss: float = 0.2,
    duplicate: float = 0.1,
    reorder: float = 0.1,
    log: list | None = None,
) -> None:
    """Relay datagrams between clients and 127.0.0.1:target_port; ``log`` gets each fate."""
    target = ("127.0.0.1", target_port)
    counts = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}
    held: dict[str, tuple[bytes, tuple] | None] = {CLIENT_TO_SERVER: None, SERVER_TO_CLIENT: None}
    client = None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(POLL)
    with sock:
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if source is None:
                return  # the socket was shut down (srv.stop())
            if source == target:
                direction, destination = SERVER_TO_CLIENT, client
            else:
                client = source
                direction, destination = CLIENT_TO_SERVER, target
            if destination is None:
                continue  # a reply before any client spoke: nobody to send it to
            number = counts[direction]
            counts[direction] += 1
            what = fate(seed, direction, number, loss, duplicate, reorder)
            if log is not None:
                log.append((direction, number, what))
            if what == "hold" and held[direction] is None:
                held[direction] = (data, destination)
                continue
            if what in ("pass", "duplicate", "hold"):
                sock.sendto(data, destination)
            if what == "duplicate":
                sock.sendto(data, destination)
            if held[direction] is not None:  # the one kept back goes out after this one
                sock.sendto(*held[direction])
                held[direction] = None
