"""The course's servers keep every byte under concurrency (helpers/servers).

A smaller run of bench/bench_load.py: 100 clients per design, in this process, each
server run by netlab.serve as a notebook would run it. No sleeps: the clients wait on
their sockets, and every run has a deadline.
"""

import selectors
import socket
import threading

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
