"""The course's servers keep every byte under concurrency (helpers/servers).

A smaller run of bench/bench_load.py: 100 clients per design, in this process, each
server run by netlab.serve as a notebook would run it. No sleeps: the clients wait on
their sockets, and every run has a deadline.
"""

import importlib
import os
import selectors
import socket
import threading
from types import SimpleNamespace

import pytest

from helpers import netlab
from helpers.servers import DESIGNS
from helpers.servers.framing import HEADER, is_intact, pack_message, unpack_header
from helpers.servers.load import run_load
from helpers.servers.selector import OUTBOX_LIMIT, Connection


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_server_keeps_every_byte_with_100_clients(design):
    with netlab.serve(DESIGNS[design], port=None, name=f"test-{design}") as srv:
        result = run_load(srv.port, clients=100, messages=5, seed=7, timeout=20)
    assert result.messages == 500
    assert (result.lost_bytes, result.corrupted) == (0, 0), (result.line(design), result.errors)


def test_load_clients_notice_a_server_that_loses_a_byte():
    def loses_one_byte(port):
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
        while True:
            conn, _ = listener.accept()

            def echo(conn=conn):
                with conn:
                    first = True
                    while data := conn.recv(65536):
                        conn.sendall(data[:-1] if first else data)
                        first = False

            threading.Thread(target=echo, daemon=True).start()

    with netlab.serve(loses_one_byte, port=None) as srv:
        result = run_load(srv.port, clients=5, messages=3, seed=1, timeout=5)
    assert result.lost_bytes > 0
    assert not result.ok


def test_framing_round_trip_and_corruption():
    frame = pack_message(b"hello")
    length, crc = unpack_header(frame[: HEADER.size])
    assert length == 5 and is_intact(frame[HEADER.size :], crc)
    assert not is_intact(b"hellp", crc)


def test_selector_server_asks_for_write_only_with_data_to_send():
    a, b = socket.socketpair()
    with a, b:
        conn = Connection(a)
        assert conn.wanted_events() == selectors.EVENT_READ  # idle: no WRITE, no busy loop
        conn.outbox += b"x"
        assert conn.wanted_events() == selectors.EVENT_READ | selectors.EVENT_WRITE
        conn.outbox += bytes(OUTBOX_LIMIT)
        assert conn.wanted_events() == selectors.EVENT_WRITE  # backpressure: stop reading
        conn.outbox.clear()
        conn.peer_closed = True
        assert conn.wanted_events() == 0  # everything echoed, client gone: close


class _Bound(Exception):
    """Raised by the stand-in socket's bind(): the server function has set its options."""


@pytest.mark.parametrize("module_name", ["threaded", "selector"])
@pytest.mark.parametrize("os_name, reuse", [("posix", True), ("nt", False)])
def test_course_servers_set_so_reuseaddr_except_on_windows(
    monkeypatch, module_name, os_name, reuse
):
    """Notebook 02: on Windows SO_REUSEADDR lets another socket take a port in use, so the
    course's servers (printed in notebook 05) set it only elsewhere."""
    module = importlib.import_module(f"helpers.servers.{module_name}")
    options = []

    class StandIn:
        def __init__(self, *args):
            pass

        def setsockopt(self, level, option, value):
            options.append(option)

        def bind(self, address):
            raise _Bound

    fake = SimpleNamespace(
        **{name: getattr(socket, name) for name in dir(socket) if name.isupper()}
    )
    fake.socket = StandIn
    monkeypatch.setattr(module, "socket", fake)
    monkeypatch.setattr(module, "os", SimpleNamespace(name=os_name))
    server = getattr(module, f"{module_name}_echo_server")
    with pytest.raises(_Bound):
        server(0)
    assert (socket.SO_REUSEADDR in options) is reuse


def test_socketserver_server_sets_so_reuseaddr_except_on_windows():
    from helpers.servers.socketserver_server import EchoServer

    assert EchoServer.allow_reuse_address is (os.name != "nt")  # TCPServer's default: False
