"""The recording relay against real sockets on loopback: bytes, order, FIN, RST, load.

Every test talks to a real server through a real relay; nothing is mocked. Waits are
on events, sockets (with timeouts) and the relay's own ``wait_closed``, never sleeps.
The tests that matter for both ways of moving bytes (``os.splice`` on Linux, and the
portable copy) run with each.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.netlab._relay import _CAN_SPLICE, CLIENT_TO_SERVER, SERVER_TO_CLIENT, Relay

C2S, S2C = CLIENT_TO_SERVER, SERVER_TO_CLIENT
TIMEOUT = 5.0
LINGER_RST = struct.pack("ii", 1, 0)

MOVERS = [pytest.param(False, id="copy")]
if _CAN_SPLICE:
    MOVERS.append(pytest.param(True, id="splice"))


class TargetServer:
    """A thread-per-connection server on a free port; ``handler(conn)`` serves each client.

    What handlers raise is kept in ``errors``, so a test can assert there was none.
    """

    def __init__(self, handler):
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.stopping = False
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self.stopping:
                conn.close()
                return
            conn.settimeout(TIMEOUT)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn):
        try:
            self.handler(conn)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self):
        self.stopping = True
        try:  # wake accept(): closing a listener does not
            socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT).close()
        except OSError:
            pass
        self.accepter.join(TIMEOUT)
        self.listener.close()
        for thread in self.threads:
            thread.join(TIMEOUT)
        assert not any(t.is_alive() for t in self.threads), "a server thread did not end"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def echo(conn):
    while data := conn.recv(65536):
        conn.sendall(data)


def connect(relay) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.port), timeout=TIMEOUT)


def read_all(sock) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def recv_exactly(sock, n) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"peer closed after {len(data)} of {n} bytes"
        data += chunk
    return data


def kinds(connection):
    return [(e.kind, e.direction) for e in connection.events]


@pytest.fixture
def make_relay():
    """Relays that are stopped, and checked for errors, at the end of the test."""
    relays = []

    def make(port, **options):
        relay = Relay("127.0.0.1", port, **options)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.stop()
        assert relay.errors == []


# --- every byte, in order ------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_relays():
    server = TargetServer(echo)
    relays = {
        splice: Relay("127.0.0.1", server.port, preview=1 << 20, splice=splice)
        for splice in (False, True)
    }
    yield relays
    for relay in relays.values():
        relay.stop()
        assert relay.errors == []
    server.close()
    assert server.errors == []


writes = st.lists(st.tuples(st.binary(min_size=1, max_size=3000), st.floats(0, 0.003)), max_size=12)


@pytest.mark.parametrize("splice", MOVERS)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=writes)
def test_every_byte_arrives_in_order_whatever_the_chunking(echo_relays, splice, writes):
    relay = echo_relays[splice]
    data = b"".join(piece for piece, _ in writes)
    pause = threading.Event()  # never set: wait(t) is the client pausing between writes
    with connect(relay) as client:
        for piece, seconds in writes:
            client.sendall(piece)
            pause.wait(seconds)
        client.shutdown(socket.SHUT_WR)
        assert read_all(client) == data
    (connection,) = relay.wait_closed(1, TIMEOUT)
    relay.clear()
    assert connection.bytes == {C2S: len(data), S2C: len(data)}
    assert connection.ended == {C2S: "FIN", S2C: "FIN"}
    for direction in (C2S, S2C):
        chunks = [e for e in connection.events if e.kind == "data" and e.direction == direction]
        assert len(chunks) == connection.chunks[direction]
        assert all(e.size > 0 for e in chunks)
        # the previews are whole chunks here: together they are the stream, in order
        assert b"".join(e.preview for e in chunks) == data
    times = [e.time for e in connection.events]
    assert times == sorted(times)


# --- load -------------------------------------------------------------------------------


@pytest.mark.parametrize("splice", MOVERS)
def test_hundred_concurrent_connections_recorded_exactly(make_relay, splice):
    count = 100
    payloads = [bytes([i]) * (1000 + 37 * i) for i in range(count)]
    with TargetServer(echo) as server:
        relay = make_relay(server.port, splice=splice)
        clients = [connect(relay) for _ in range(count)]
        size_by_port = {c.getsockname()[1]: len(p) for c, p in zip(clients, payloads, strict=True)}
        try:
            for client, payload in zip(clients, payloads, strict=True):
                client.sendall(payload)
            for client, payload in zip(clients, payloads, strict=True):
                assert recv_exactly(client, len(payload)) == payload
            # every client has its echo and none has closed: 100 connections at once
            live = relay.connections
            assert len(live) == count and not any(c.closed for c in live)
            for client in clients:
                client.shutdown(socket.SHUT_WR)
            for client in clients:
                assert read_all(client) == b""
        finally:
            for client in clients:
                client.close()
        connections = relay.wait_closed(count, TIMEOUT)
    assert server.errors == []
    assert [c.number for c in connections] == list(range(1, count + 1))
    assert sorted(c.client[1] for c in connections) == sorted(size_by_port)
    for connection in connections:
        size = size_by_port[connection.client[1]]
        assert connection.bytes == {C2S: size, S2C: size}
        assert connection.ended == {C2S: "FIN", S2C: "FIN"}
        data = [e for e in connection.events if e.kind == "data"]
        assert sum(e.size for e in data) == 2 * size
        assert len(data) == connection.chunks[C2S] + connection.chunks[S2C]


# --- how connections end ---------------------------------------------------------------


class Outcome:
    """What a server handler saw, handed to the test thread through an event."""

    def __init__(self):
        self.done = threading.Event()
        self.step = threading.Event()
        self.value = None

    def set(self, value):
        self.value = value
        self.done.set()

    def get(self):
        assert self.done.wait(TIMEOUT), "the server handler did not finish"
        return self.value


def read_until_end(sock) -> str:
    """'FIN' when the peer closed normally, 'RST' when it reset."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return "RST"
    return "FIN"


@pytest.mark.parametrize("splice", MOVERS)
def test_normal_close_is_recorded_as_fin_both_ways(make_relay, splice):
    outcome = Outcome()

    def handler(conn):
        received = recv_exactly(conn, 5)
        outcome.set((received, read_until_end(conn)))

    with TargetServer(handler) as server:
        relay = make_relay(server.port, splice=splice)
        with connect(relay) as client:
            client.sendall(b"hello")
        assert outcome.get() == (b"hello", "FIN")
        (connection,) = relay.wait_closed(1, TIMEOUT)
    assert server.errors == []
    assert kinds(connection) == [
        ("open", None),
        ("data", C2S),
        ("fin", C2S),
        ("fin", S2C),
        ("close", None),
    ]
    assert connection.ended == {C2S: "FIN", S2C: "FIN"}


@pytest.mark.parametrize("splice", MOVERS)
def test_client_reset_reaches_the_server_as_reset(make_relay, splice):
    outcome = Outcome()

    def handler(conn):
        received = recv_exactly(conn, 5)
        outcome.step.set()
        outcome.set((received, read_until_end(conn)))

    with TargetServer(handler) as server:
        relay = make_relay(server.port, splice=splice)
        client = connect(relay)
        client.sendall(b"hello")
        assert outcome.step.wait(TIMEOUT)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        client.close()  # with SO_LINGER 0: an RST, not a FIN
        assert outcome.get() == (b"hello", "RST")
        (connection,) = relay.wait_closed(1, TIMEOUT)
    assert server.errors == []
    assert kinds(connection) == [("open", None), ("data", C2S), ("reset", C2S), ("close", None)]
    assert connection.ended == {C2S: "RST", S2C: "RST"}


@pytest.mark.parametrize("splice", MOVERS)
def test_server_reset_reaches_the_client_as_reset(make_relay, splice):
    client_read = threading.Event()

    def handler(conn):
        conn.sendall(b"bye")
        assert client_read.wait(TIMEOUT)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)

    with TargetServer(handler) as server:  # the server closes conn after handler()
        relay = make_relay(server.port, splice=splice)
        with connect(relay) as client:
            assert recv_exactly(client, 3) == b"bye"
            client_read.set()
            assert read_until_end(client) == "RST"
        (connection,) = relay.wait_closed(1, TIMEOUT)
    assert server.errors == []
    assert kinds(connection) == [("open", None), ("data", S2C), ("reset", S2C), ("close", None)]


@pytest.mark.parametrize("splice", MOVERS)
def test_half_close_keeps_the_other_direction_open(make_relay, splice):
    def handler(conn):
        request = read_all(conn)  # until the client's FIN
        conn.sendall(b"got %d bytes" % len(request))

    with TargetServer(handler) as server:
        relay = make_relay(server.port, splice=splice)
        with connect(relay) as client:
            client.sendall(b"x" * 1000)
            client.shutdown(socket.SHUT_WR)
            assert read_all(client) == b"got 1000 bytes"
        (connection,) = relay.wait_closed(1, TIMEOUT)
    assert server.errors == []
    events = kinds(connection)
    assert events[0] == ("open", None) and events[-1] == ("close", None)
    assert events.index(("fin", C2S)) < events.index(("data", S2C)) < events.index(("fin", S2C))
    assert connection.bytes == {C2S: 1000, S2C: 14}


def test_unreachable_server_is_recorded_and_the_client_reset(make_relay):
    with socket.socket() as nobody:  # bound, never listening: connecting is refused
        nobody.bind(("127.0.0.1", 0))
        relay = make_relay(nobody.getsockname()[1])
        try:
            client = connect(relay)
        except ConnectionResetError:
            # The relay's RST came before this thread looked at connect()'s result (a
            # busy machine): connect() itself reports the reset. The same fact.
            pass
        else:
            with client:
                assert read_until_end(client) == "RST"
        (connection,) = relay.wait_closed(1, TIMEOUT)
    assert [e.kind for e in connection.events] == ["refused", "close"]
    assert "ConnectionRefusedError" in connection.events[0].note


# --- memory, waiting, stopping --------------------------------------------------------------


@pytest.mark.parametrize("splice", MOVERS)
def test_large_transfer_keeps_bounded_records_and_exact_totals(make_relay, splice):
    total = 8 * 1024 * 1024

    def handler(conn):
        conn.sendall(str(len(read_all(conn))).encode())

    with TargetServer(handler) as server:
        relay = make_relay(server.port, preview=16, max_chunks=10, splice=splice)
        with connect(relay) as client:
            block = bytes(range(256)) * 256
            for _ in range(total // len(block)):
                client.sendall(block)
            client.shutdown(socket.SHUT_WR)
            assert read_all(client) == str(total).encode()
        (connection,) = relay.wait_closed(1, TIMEOUT)
    assert connection.bytes[C2S] == total
    data = [e for e in connection.events if e.kind == "data"]
    omitted = [e for e in connection.events if e.kind == "omitted"]
    assert len(data) == 10
    assert all(len(e.preview) <= 16 for e in data)
    assert data[0].preview == bytes(range(16))
    assert len(connection.events) <= 10 + 6  # open, omitted runs, FINs, close
    assert sum(e.size for e in data + omitted) == total + len(str(total))
    assert sum(1 for _ in data) + sum(e.count for e in omitted) == sum(connection.chunks.values())


def test_wait_closed_says_what_is_still_open(make_relay):
    release = threading.Event()

    def handler(conn):
        release.wait(TIMEOUT)

    with TargetServer(handler) as server:
        relay = make_relay(server.port)
        with connect(relay) as client:
            client.shutdown(socket.SHUT_WR)
            with pytest.raises(TimeoutError, match="connection 1 is still open"):
                relay.wait_closed(1, timeout=0.2)
            with pytest.raises(TimeoutError, match="accepted 1 connection"):
                relay.wait_closed(2, timeout=0.2)
            release.set()
            assert read_all(client) == b""
        relay.wait_idle(TIMEOUT)


def test_stop_is_bounded_idempotent_and_closes_everything(make_relay):
    release = threading.Event()

    def handler(conn):
        conn.sendall(conn.recv(1))  # now the client knows the relay connected it
        release.wait(TIMEOUT)  # and the connection stays open until the test ends

    with TargetServer(handler) as server:
        relay = make_relay(server.port)
        clients = [connect(relay) for _ in range(3)]
        for client in clients:
            client.sendall(b"!")
            assert recv_exactly(client, 1) == b"!"
        clients[0].sendall(b"not read by the server")
        started = time.monotonic()
        relay.stop()
        assert time.monotonic() - started < 2.5
        relay.stop()  # again: nothing happens
        for client in clients:
            assert read_all(client) == b""  # the relay closed its side
            client.close()
        with pytest.raises(OSError):
            connect(relay)
        release.set()
    connections = relay.connections
    assert all(c.closed for c in connections)
    assert all(c.events[-1].note == "relay stopped" for c in connections)


def test_clear_forgets_ended_connections_and_renumbers(make_relay):
    with TargetServer(echo) as server:
        relay = make_relay(server.port)
        for _ in range(2):
            with connect(relay) as client:
                client.shutdown(socket.SHUT_WR)
                read_all(client)
        assert [c.number for c in relay.wait_closed(2, TIMEOUT)] == [1, 2]
        relay.clear()
        assert relay.connections == []
        with connect(relay) as client:
            client.shutdown(socket.SHUT_WR)
            read_all(client)
        assert [c.number for c in relay.wait_closed(1, TIMEOUT)] == [1]


def test_relay_threads_never_print(make_relay, capfd):
    def handler(conn):
        # Only once the client is connected (its b"go" came through): otherwise, on a
        # loaded machine, the relay can pass on the reset before connect() has returned
        # in the client's thread, and connect() itself raises ConnectionResetError.
        assert conn.recv(2) == b"go"
        conn.sendall(b"hi")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)

    with TargetServer(handler) as server:
        relay = make_relay(server.port)
        with connect(relay) as client:
            client.sendall(b"go")
            read_until_end(client)
        relay.wait_closed(1, TIMEOUT)
        relay.stop()
    assert capfd.readouterr() == ("", "")


def test_context_manager_and_repr():
    with TargetServer(echo) as server:
        with Relay("127.0.0.1", server.port) as relay:
            assert f"-> 127.0.0.1:{server.port}" in repr(relay)
            assert relay.address == ("127.0.0.1", relay.port)
        assert "stopped" in repr(relay)
        with pytest.raises(OSError):
            connect(relay)
