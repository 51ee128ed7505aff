"""The claims of notebook 12 that its stored outputs cannot hold (they are timings, marked
NBVAL_IGNORE_OUTPUT there): orderings and ratios, measured here on real sockets.

These run while other tests load the machine, so each margin is far from what noise does:
the Nagle stall is a 40 ms timer against round trips of microseconds (asserted: 5x apart,
measured 1000x); recv(65536) against recv(1) is asserted 10x, measured 1,600-7,900x.
"""

import socket
import statistics
import sys
import threading
import time

import pytest
from portscript import PORT, script_on_free_port

from helpers.exercises.solutions.nb12 import recv_exactly
from helpers.servers.bulk import iperf3_mb_per_s, send_for
from helpers.servers.pingpong import PingPongResult, run_pingpong

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="Linux's values")


def serve_in_thread(handle):
    """A listener on a free port whose connections ``handle(conn)`` serves, one thread each."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(10)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener


def kv(conn):
    with conn:
        try:
            while True:
                size = int.from_bytes(recv_exactly(conn, 4), "big")
                value = recv_exactly(conn, size).upper()
                conn.sendall(len(value).to_bytes(4, "big") + value)
        except OSError:
            return


def request_times(port, rounds=10, nodelay=False, one_write=False):
    key = b"k" * 100
    header = len(key).to_bytes(4, "big")
    times = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            start = time.perf_counter()
            if one_write:
                sock.sendall(header + key)
            else:
                sock.sendall(header)
                sock.sendall(key)
            recv_exactly(sock, 4 + len(key))
            times.append(time.perf_counter() - start)
    return times[1:]  # a new connection ACKs its first segments at once


@linux_only
def test_tcp_nodelay_and_one_write_remove_the_40_ms_stall():
    with serve_in_thread(kv) as listener:
        port = listener.getsockname()[1]
        stalled = statistics.median(request_times(port))
        nodelay = statistics.median(request_times(port, nodelay=True))
        one_write = statistics.median(request_times(port, one_write=True))
    assert stalled >= 0.030, f"two writes: median {stalled * 1e3:.1f} ms, the stall is 40 ms"
    for name, fixed in (("TCP_NODELAY", nodelay), ("one write", one_write)):
        assert fixed < stalled / 5 and fixed < 0.010, (name, fixed, stalled)


def source(conn):
    block = memoryview(bytes(1 << 20))
    with conn:
        try:
            left = int.from_bytes(recv_exactly(conn, 8), "big")
            while left:
                piece = block[: min(left, len(block))]
                conn.sendall(piece)
                left -= len(piece)
        except OSError:
            return


def recv_rate(port, size, nbytes):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(nbytes.to_bytes(8, "big"))
        start = time.perf_counter()
        total = 0
        while chunk := sock.recv(size):
            total += len(chunk)
        elapsed = time.perf_counter() - start
    assert total == nbytes
    return total / elapsed


def test_a_64_kib_recv_beats_a_1_byte_recv_by_more_than_10x():
    with serve_in_thread(source) as listener:
        port = listener.getsockname()[1]
        one_byte = statistics.median(recv_rate(port, 1, 30_000) for _ in range(3))
        big = statistics.median(recv_rate(port, 65536, 20_000_000) for _ in range(3))
    assert big > 10 * one_byte, (big, one_byte)


@linux_only
def test_linux_doubles_the_buffer_size_you_set():
    with socket.socket() as s:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            s.setsockopt(socket.SOL_SOCKET, option, 100_000)
            assert s.getsockopt(socket.SOL_SOCKET, option) == 200_000


def test_the_bulk_path_delivers_every_byte_and_iperf3_reports():
    with script_on_free_port("-m", "helpers.servers.bulk", PORT) as (_, port):
        ours = send_for(port, seconds=0.3)  # raises unless the sink counted every byte
    assert ours > 0
    report = iperf3_mb_per_s(seconds=1)  # make test installs iperf3 (tools/system-tools.sh)
    assert report["mb_per_s"] > 0 and report["bytes"] > 0 and report["blksize"] > 0


@pytest.mark.parametrize("design", ["threaded", "selector", "asyncio"])
def test_each_design_echoes_every_byte_under_load(design):
    with script_on_free_port("-m", "helpers.servers", design, PORT) as (_, port):
        result = run_pingpong(port, clients=100, seconds=0.2)
    assert result.ok, (result.line(design), result.errors)
    assert result.exchanges >= 100, result.line(design)  # every client got at least one


def test_percentiles_of_a_known_sample():
    result = PingPongResult(round_trips_ns=[i * 1000 for i in range(1, 101)], seconds=1.0)
    assert result.percentile(50) == pytest.approx(50.5)
    assert result.percentile(99) == pytest.approx(99.01)
    assert result.percentile(100) == 100.0 and result.percentile(0) == 1.0
