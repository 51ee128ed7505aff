"""Exercises of notebook 06, UDP.

    nb06.check_udp_echo_server(udp_echo_server)
    nb06.check_request(request)                  # request(address, request_id, payload)
    nb06.check_analyse(analyse)                  # analyse(received, count)

Datagrams are sent on 127.0.0.1 with real sockets; the "lossy network" is the seeded relay
of ``helpers/servers/lossy_udp.py`` or a server that drops on purpose, so verdicts are
the same on every run.

The cases are tables: ``UDP_ECHO_CASES`` (datagrams sent by which client, the hint; each
case's ``kind`` names its engine in ``UDP_ENGINES``), ``REQUEST_CASES`` (how the server
misbehaves, the payload, the hint) and ``ANALYSE_CASES`` with ``ANALYSE_KEYS`` (the keys
judged and their hints). Each ``check_<name>`` builds its checks from its table.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from dataclasses import dataclass

import psutil

from helpers.exercises._checker import (
    Failure,
    call_bounded,
    describe_exception,
    from_this_process,
    returned_none,
    run_checks,
    serving,
    show_bytes,
)
from helpers.servers.lossy_udp import lossy_udp_relay

TIMEOUT = 1.0


def _udp_client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    return sock


# --- Exercise 1: udp_echo_server(port) ------------------------------------------------------


def _own_sockets(port: int, kind: str) -> list:
    """This process's sockets of ``kind`` ("tcp" or "udp") bound to ``port`` (from the OS)."""
    return [c for c in psutil.Process().net_connections(kind=kind) if c.laddr.port == port]


HINT_DATAGRAM_BUFFER = (
    "recvfrom(n) cuts a longer datagram to n bytes and drops the rest (on Windows it raises "
    "WinError 10040). Use recvfrom(65535)."
)
HINT_TCP_SOCKET = (
    "socket.socket() makes a TCP socket (SOCK_STREAM). For UDP write "
    "socket.socket(socket.AF_INET, socket.SOCK_DGRAM), then recvfrom() and sendto() (no "
    "listen() or accept())."
)
HINT_EACH_DATAGRAM = "Reply to each datagram with sendto(data, address), in a loop."
HINT_EMPTY_DATAGRAM = (
    "An empty datagram b'' is a valid datagram, not the end of anything (UDP has no "
    "connection to close): echo it and keep serving."
)
HINT_EACH_CLIENT = (
    "Send each reply to the address recvfrom() returned with that datagram: with UDP, every "
    "datagram may come from a different client."
)
HINT_LOOPBACK = (
    "Bind ('127.0.0.1', port): '' means every interface, so anyone on your network could "
    "send to it."
)


@dataclass(frozen=True)
class UdpCase:
    """A case of udp_echo_server. ``kind`` "echo": ``datagrams`` (client number, payload)
    are sent in turn, each must come back unchanged to its client, ``hint`` when not;
    ``sent`` is the input shown. ``kind`` "loopback": the server is bound to 127.0.0.1."""

    title: str
    kind: str = "echo"
    datagrams: tuple = ()
    sent: str = ""
    hint: str = ""


UDP_ECHO_CASES = [
    UdpCase(
        "echoes three datagrams, one reply each",
        datagrams=((0, b"one"), (0, b"two"), (0, b"three")),
        sent="b'one', b'two', b'three' as three datagrams",
        hint=HINT_EACH_DATAGRAM,
    ),
    UdpCase("is bound to 127.0.0.1 only", kind="loopback"),
    UdpCase(
        "echoes a 60000-byte datagram whole",
        datagrams=((0, bytes(range(256)) * 234 + bytes(96)),),  # 60000 bytes
        sent="one datagram of 60000 bytes",
        hint=HINT_DATAGRAM_BUFFER,
    ),
    UdpCase(
        "echoes an empty datagram and keeps serving",
        datagrams=((0, b""), (0, b"after")),
        sent="an empty datagram b'', then b'after'",
        hint=HINT_EMPTY_DATAGRAM,
    ),
    UdpCase(
        "replies to each client at its own address",
        datagrams=((0, b"from A"), (1, b"from B")),
        sent="client A sends b'from A', then client B sends b'from B'",
        hint=HINT_EACH_CLIENT,
    ),
]


def _expect_echo(sock, srv, payload, sent, hint):
    """Send ``payload`` from ``sock``; the same bytes must come back to it."""
    sock.sendto(payload, ("127.0.0.1", srv.port))
    try:
        data, _ = sock.recvfrom(65535)
    except TimeoutError:
        if _own_sockets(srv.port, "tcp") and not _own_sockets(srv.port, "udp"):
            raise Failure(
                "no reply came within 1 s: your server listens with TCP on that port",
                HINT_TCP_SOCKET,
                sent,
            ) from None
        raise Failure(
            f"no reply to {show_bytes(payload, 20)} came within 1 s", hint, sent
        ) from None
    if data != payload and (not data or not payload.startswith(data)):
        # not a datagram cut short (that is the buffer's size): a changed reply
        raise Failure(
            f"the reply was {show_bytes(data)}, expected {show_bytes(payload)}",
            "Send the datagram back unchanged: sendto(data, address) with the bytes "
            f"recvfrom() returned (expected {show_bytes(payload)}, got "
            f"{show_bytes(data)}). §1's server upper-cased its replies; an echo "
            "server changes nothing.",
            sent,
        )
    if data != payload:
        raise Failure(f"the reply was {show_bytes(data)}", hint, sent)


def _echo_case(udp_echo_server, case: UdpCase):
    def check():
        clients = 1 + max(client for client, _ in case.datagrams)
        with serving(udp_echo_server) as srv, contextlib.ExitStack() as stack:
            socks = [stack.enter_context(_udp_client()) for _ in range(clients)]
            for client, payload in case.datagrams:
                _expect_echo(socks[client], srv, payload, case.sent, case.hint)

    return check


def _loopback_only(udp_echo_server, case: UdpCase):
    def check():
        with serving(udp_echo_server) as srv:
            hosts = sorted(c.laddr.ip for c in _own_sockets(srv.port, "udp"))
            if hosts and hosts != ["127.0.0.1"]:
                raise Failure(
                    f"it is bound to {hosts[0]!r}: every network interface",
                    HINT_LOOPBACK,
                    "where the server is bound (read from the operating system)",
                )

    return check


UDP_ENGINES = {"echo": _echo_case, "loopback": _loopback_only}


def check_udp_echo_server(udp_echo_server) -> object:
    checks = [
        (case.title, UDP_ENGINES[case.kind](udp_echo_server, case)) for case in UDP_ECHO_CASES
    ]
    return run_checks("udp_echo_server(port)", checks)


# --- Exercise 2: request(address, request_id, payload) -------------------------------------


class ForgetfulServer:
    """Replies ``<id>:<PAYLOAD>`` to ``<id>:<payload>``, after ignoring the first ``drop``.

    With ``stale``, it first sends a reply to another id. ``silent`` never replies. Every
    client address seen is remembered, so ``close()`` can wake a client stuck in recvfrom.
    """

    def __init__(self, drop: int = 0, stale: bool = False, silent: bool = False):
        self.drop, self.stale, self.silent = drop, stale, silent
        self.received = 0
        self.clients: set = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = self.sock.getsockname()
        self.running = True
        self.thread = threading.Thread(target=self._run, name="exercise-udp", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                data, client = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if client not in self.clients and not from_this_process(client, "udp"):
                continue  # a stranger's datagram: not the learner's
            self.clients.add(client)
            self.received += 1
            if self.silent or self.received <= self.drop:
                continue
            rid, _, payload = data.partition(b":")
            if self.stale:  # id 70: a reply that only the colon tells from one to id 7
                self.sock.sendto(b"70:" + payload.upper() + b" (OLD)", client)
            self.sock.sendto(rid + b":" + payload.upper(), client)

    def close(self) -> None:
        self.running = False
        for client in list(self.clients):  # wake a learner stuck in recvfrom()
            with contextlib.suppress(OSError):
                self.sock.sendto(b"0:(checker stopping)", client)
        self.thread.join(1.0)
        if not self.thread.is_alive():  # count what arrived but was not read yet
            with contextlib.suppress(OSError):  # (already closed by an earlier close())
                self.sock.setblocking(False)
                while self.sock.recvfrom(65535):
                    self.received += 1
        self.sock.close()


HINT_RETRY = (
    "A lost datagram is never re-sent for you: when recvfrom() times out, send the request "
    "again (up to `retries` times)."
)
HINT_RECV_TIMEOUT = (
    "Set sock.settimeout(timeout) before recvfrom(), and retry when it raises TimeoutError."
)
HINT_CHECK_ID = (
    "Check the id before the ':' of each reply, colon included (b'70:' starts with b'7' "
    "too): compare with f'{request_id}:'.encode(); ignore replies to other ids (late or "
    "duplicated datagrams) and keep waiting."
)
HINT_COLONS = (
    "The payload may contain colons too: cut off only the id and the first colon "
    "(data[len(prefix):], or data.partition(b':')[2]), not split(b':')."
)


@dataclass(frozen=True)
class Request:
    """A case of request: ``request(address, 7, payload)`` against a ForgetfulServer(drop,
    stale) must return ``payload.upper()``; ``hint`` when not; ``sent`` is the input shown."""

    title: str
    sent: str
    hint: str
    payload: bytes = b"hello"
    drop: int = 0
    stale: bool = False


REQUEST_CASES = [
    Request(
        "request 7, b'hello' -> b'HELLO'",
        "request 7, b'hello'",
        "Send b'7:hello'; return the payload after the ':' of the reply.",
    ),
    Request(
        "retries when the first two requests are lost",
        "request 7, b'hello'; the server ignores the first 2",
        HINT_RETRY,
        drop=2,
    ),
    Request(
        "ignores a stale reply to another request",
        "request 7; a reply to request 70 arrives first",
        HINT_CHECK_ID,
        stale=True,
    ),
    Request(
        "a payload with colons in it: b'a:b:c' -> b'A:B:C'",
        "request 7, b'a:b:c'",
        HINT_COLONS,
        payload=b"a:b:c",
    ),
    Request(
        "a reply of 3000 bytes comes back whole",
        "request 7, a payload of 3000 bytes",
        HINT_DATAGRAM_BUFFER,
        payload=bytes(range(97, 123)) * 115 + b"abcdefghij",
    ),
]


def _run_request(request, server, timeout=4.0, payload=b"hello"):
    """Call ``request(server.address, 7, payload)``, bounded; the server is closed after."""
    try:
        return call_bounded(
            request, server.address, 7, payload, timeout=timeout, on_timeout=server.close
        )
    finally:
        server.close()


def _request_case(request, case: Request):
    def check():
        sent, hint, payload = case.sent, case.hint, case.payload
        server = ForgetfulServer(drop=case.drop, stale=case.stale)
        call = _run_request(request, server, payload=payload)
        if not call.finished:
            raise Failure("it was still waiting 4 s later", HINT_RECV_TIMEOUT, sent)
        if call.error is not None:
            raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
        returned_none(call.result, sent)
        if call.result != payload.upper():
            raise Failure(f"it returned {show_bytes(call.result)}", hint, sent)

    return check


def _gives_up(request):
    def check():
        sent = "request 7, b'hello' to a server that never answers (timeout 0.2 s, 5 retries)"
        server = ForgetfulServer(silent=True)
        call = _run_request(request, server)
        if not call.finished:
            raise Failure(
                "it was still trying 4 s later",
                "Give up after `retries` attempts: raise TimeoutError.",
                sent,
            )
        if server.received > 5:
            raise Failure(
                f"it sent the request {server.received} times",
                "Send at most `retries` times in all (the first send counts): "
                "`for attempt in range(retries):`, then raise TimeoutError.",
                sent,
            )
        if not isinstance(call.error, TimeoutError):
            what = (
                f"it raised {describe_exception(call.error)}"
                if call.error
                else f"it returned {call.result!r:.60}"
            )
            raise Failure(what, "After the last attempt, raise TimeoutError.", sent)

    return check


def check_request(request) -> object:
    checks = [(case.title, _request_case(request, case)) for case in REQUEST_CASES]
    checks.append(("raises TimeoutError after the last retry", _gives_up(request)))
    return run_checks("request(address, request_id, payload)", checks, function=request)


# --- Exercise 3: analyse(received, count) ---------------------------------------------------


def truth(received: list[int], count: int) -> dict:
    seen: set[int] = set()
    duplicated: set[int] = set()
    late = 0
    highest = -1
    for number in received:
        if number in seen:
            duplicated.add(number)
        elif number < highest:
            late += 1
        seen.add(number)
        highest = max(highest, number)
    return {
        "lost": sorted(set(range(count)) - seen),
        "duplicated": sorted(duplicated),
        "late": late,
    }


def through_relay(seed: int, count: int = 30) -> list[int]:
    """Send 0..count-1 through the lossy relay (seeded); return the numbers received, in order."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.3)

        def relay(port):
            lossy_udp_relay(port, receiver.getsockname()[1], seed)

        with serving(relay) as srv, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for number in range(count):
                sender.sendto(str(number).encode(), ("127.0.0.1", srv.port))
            received = []
            with contextlib.suppress(TimeoutError):
                while True:
                    received.append(int(receiver.recvfrom(100)[0]))
    return received


HINT_DICT = "Return a dict with the keys 'lost', 'duplicated' and 'late'."
# (key of the dict analyse returns, hint when its value is wrong), in the order judged
ANALYSE_KEYS = [
    (
        "lost",
        "lost: every number in range(count) that never arrived, sorted (the last ones may be "
        "missing too: do not stop at max(received)).",
    ),
    ("duplicated", "duplicated: each number that arrived more than once, listed once, sorted."),
    (
        "late",
        "late: how many first arrivals came after a HIGHER number had already arrived "
        "(compare with the highest so far, not only the previous one).",
    ),
]
# (title, the numbers received, or a function that returns them when the check runs, count)
ANALYSE_CASES = [
    ("[0, 2, 1, 3, 3], count 5", [0, 2, 1, 3, 3], 5),
    ("[3, 0, 1, 2, 2, 2], count 6", [3, 0, 1, 2, 2, 2], 6),
    ("30 datagrams through the lossy relay, seed 11", functools.partial(through_relay, 11, 30), 30),
]


def _analyse_case(analyse, received, count):
    def check():
        got = received() if callable(received) else received
        _judge_analysis(analyse, got, count, f"received {got}, count {count}")

    return check


def _judge_analysis(analyse, received, count, sent):
    call = call_bounded(analyse, list(received), count, timeout=2.0)
    if call.error is not None:
        raise Failure(f"it raised {describe_exception(call.error)}", HINT_DICT, sent)
    expected = truth(received, count)
    returned_none(call.result, sent)
    if not isinstance(call.result, dict):
        raise Failure(f"it returned {show_bytes(call.result)}", HINT_DICT, sent)
    result = call.result
    for key, hint in ANALYSE_KEYS:
        if result.get(key) != expected[key]:
            if key == "late":
                hint = _late_hint(result.get(key), received, hint)
            raise Failure(f"{key} was {result.get(key)!r}, expected {expected[key]!r}", hint, sent)


HINT_LATE_COUNT = "late is a number, an int: how many first arrivals were late, not which ones."
HINT_LATE_REPEATS = (
    "A repeat is not late: count only first arrivals (skip a number you have seen already), "
    "each one that came after a higher number."
)


def _late_hint(late, received, hint: str) -> str:
    """The hint for a wrong ``late``: a list instead of a count, repeats counted too, or
    the general one."""
    if isinstance(late, list | tuple | set):
        return HINT_LATE_COUNT
    highest, every_late = -1, 0
    for number in received:  # every arrival below the highest so far, repeats included
        every_late += number < highest
        highest = max(highest, number)
    return HINT_LATE_REPEATS if late == every_late else hint


def check_analyse(analyse) -> object:
    checks = [(title, _analyse_case(analyse, *case)) for title, *case in ANALYSE_CASES]
    return run_checks("analyse(received, count)", checks, function=analyse)
