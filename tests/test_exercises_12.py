"""Notebook 12's checks pass the reference solutions and correct answers in other styles,
and catch the mistakes learners make when they measure, each with the hint that names the
real cause.

Real sockets on 127.0.0.1, no mocks. The checks judge timing only against what they
measure in the same run (a window, a gap, a ratio), so these tests hold on a busy machine.
"""

import socket
import struct
import time

import pytest

from helpers.exercises import nb12
from helpers.exercises.solutions import nb12 as sol12


def stub(*args):
    raise NotImplementedError


def assert_fails(verdict, *hint_words):
    text = str(verdict)
    assert not verdict.passed, text
    assert "✗" in text, text
    for word in hint_words:
        assert word in verdict.hint, text


def assert_passes(verdict):
    text = str(verdict)
    assert verdict.passed, text
    assert "all" in text and "✗" not in text, text


CHECKS = {
    "throughput": nb12.check_throughput,
    "fetch_all": nb12.check_fetch_all,
    "count_bytes": nb12.check_count_bytes,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_solutions_pass_and_stubs_are_not_done(name):
    check = CHECKS[name]
    assert_passes(check(getattr(sol12, name)))
    verdict = check(stub)
    assert verdict.not_done and "not done yet" in str(verdict)


def test_async_def_gets_a_verdict():
    async def throughput(port, nbytes):
        return 1.0

    assert_fails(nb12.check_throughput(throughput), "async def")


# --- Exercise 1: throughput(port, nbytes) --------------------------------------------------


def meter(scale=1.0, clock=time.perf_counter, stop_early=False, start_late=False, wait=True):
    """A throughput meter with one mistake chosen by the arguments (none by default)."""

    def throughput(port, nbytes):
        data = b"\0" * nbytes
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = clock()
            sock.sendall(data)
            if start_late:
                start = clock()
            if stop_early:
                end = clock()
            if wait:
                while sock.recv(1024):
                    pass
            if not stop_early:
                end = clock()
        return nbytes / (end - start) * scale

    return throughput


def test_throughput_other_correct_styles():
    def with_ns(port, nbytes):
        t0 = time.perf_counter_ns()
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            sock.sendall(bytearray(nbytes))
            assert sock.recv(16) == b"ok"
        finally:
            sock.close()
        return (nbytes / 1e6) / ((time.perf_counter_ns() - t0) * 1e-9)

    def with_monotonic_and_chunks(port, nbytes):
        chunk = memoryview(bytes(65536))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = time.monotonic()
            left = nbytes
            while left:
                sent = sock.send(chunk[: min(left, len(chunk))])
                left -= sent
            sock.recv(2)
            seconds = time.monotonic() - start
        return round(nbytes / seconds / 10**6, 3)

    assert_passes(nb12.check_throughput(with_ns))
    assert_passes(nb12.check_throughput(with_monotonic_and_chunks))
    assert_passes(nb12.check_throughput(meter(1e-6)))  # bytes/s scaled right


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (meter(1 / 1.048576 * 1e-6), ["1,000,000 bytes", "MiB"]),  # MiB/s
        (meter(8e-6), ["8 bits"]),  # megabits
        (meter(1.0), ["Divide by 1,000,000"]),  # bytes per second
        (meter(1e-3), ["not 1,000"]),  # kB/s
        (meter(1e-6, clock=time.perf_counter_ns), ["nanoseconds"]),  # ns not converted
        (meter(1e-6, stop_early=True), ["sendall() returns once"]),  # clock stops at sendall
        (meter(1e-6, start_late=True), ["Start it just before"]),  # clock starts after it
        (meter(1e-6, clock=time.process_time), ["process_time"]),  # CPU time, not wall
    ],
)
def test_throughput_wrong_units_and_clocks(wrong, words):
    assert_fails(nb12.check_throughput(wrong), *words)


def test_throughput_other_mistakes():
    def returns_seconds(port, nbytes):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = time.perf_counter()
            sock.sendall(bytes(nbytes))
            sock.recv(2)
            return time.perf_counter() - start

    def seconds_per_mb(port, nbytes):
        return 1 / meter(1e-6)(port, nbytes)

    def sends_with_send(port, nbytes):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            start = time.perf_counter()
            sock.send(bytes(nbytes))
            sock.recv(2)
            return nbytes / 1e6 / (time.perf_counter() - start)

    def no_return(port, nbytes):
        meter(1e-6)(port, nbytes)

    def as_text(port, nbytes):
        return f"{meter(1e-6)(port, nbytes):.1f} MB/s"

    assert_fails(nb12.check_throughput(returns_seconds), "a rate")
    assert "elapsed time" in str(nb12.check_throughput(returns_seconds))
    assert_fails(nb12.check_throughput(seconds_per_mb), "a rate")
    assert_fails(nb12.check_throughput(no_return), "return")
    assert_fails(nb12.check_throughput(as_text), "as a number")
    verdict = nb12.check_throughput(sends_with_send)
    if not verdict.passed:  # loopback may take 8 MB in one send(); when not, the hint says so
        assert_fails(verdict, "sendall")


# --- Exercise 2: fetch_all(port, keys) -----------------------------------------------------


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_fetch_all_other_correct_styles():
    def with_nodelay(port, keys):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with sock:
            out = []
            for key in keys:
                sock.sendall(struct.pack("!I", len(key)))
                sock.sendall(key)
                (size,) = struct.unpack("!I", read_exactly(sock, 4))
                out.append(read_exactly(sock, size))
            return out

    def with_makefile(port, keys):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            stream = sock.makefile("rwb")
            out = []
            for key in keys:
                stream.write(struct.pack(">I", len(key)))
                stream.write(key)
                stream.flush()  # one write to the socket: header and key together
                size = int.from_bytes(stream.read(4), "big")
                out.append(stream.read(size))
            return out

    def into(sock, n):
        buffer = bytearray(n)
        view, got = memoryview(buffer), 0
        while got < n:
            k = sock.recv_into(view[got:])
            if not k:
                raise ConnectionError("closed")
            got += k
        return buffer

    def with_sendmsg(port, keys):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            out = []
            for key in keys:
                sock.sendmsg([len(key).to_bytes(4, "big"), key])  # one system call
                out.append(into(sock, int.from_bytes(into(sock, 4), "big")))
            return out

    for correct in (with_nodelay, with_makefile, with_sendmsg):
        assert_passes(nb12.check_fetch_all(correct))


def fetcher(options=(), one_write=False, reader=None, new_connections=False, byteorder="big"):
    def fetch_all(port, keys):
        def connect():
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            for level, name in options:
                sock.setsockopt(level, name, 1)
            return sock

        sock = None if new_connections else connect()
        out = []
        try:
            for key in keys:
                if new_connections:
                    sock = connect()
                header = len(key).to_bytes(4, byteorder)
                if one_write:
                    sock.sendall(header + key)
                else:
                    sock.sendall(header)
                    sock.sendall(key)
                size = int.from_bytes(read_exactly(sock, 4), "big")
                out.append((reader or read_exactly)(sock, size))
                if new_connections:
                    sock.close()
        finally:
            sock.close()
        return out

    return fetch_all


def single_recv(sock, n):
    return sock.recv(n)


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (fetcher(), ["Nagle", "one sendall()"]),  # the given client, unchanged
        (fetcher([(socket.IPPROTO_TCP, socket.TCP_QUICKACK)]), ["TCP_QUICKACK"]),
        (fetcher([(socket.SOL_SOCKET, socket.TCP_NODELAY)]), ["IPPROTO_TCP"]),
        (fetcher(one_write=True, reader=single_recv), ["up to n bytes"]),
        (fetcher(new_connections=True), ["one connection"]),
        (fetcher(one_write=True, byteorder="little"), ["big-endian"]),
    ],
)
def test_fetch_all_wrong_answers(wrong, words):
    assert_fails(nb12.check_fetch_all(wrong), *words)


def test_fetch_all_a_stall_is_still_caught_with_nodelay_set_too_late():
    def nodelay_after_the_loop(port, keys):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            out = []
            for key in keys:
                sock.sendall(len(key).to_bytes(4, "big"))
                sock.sendall(key)
                size = int.from_bytes(read_exactly(sock, 4), "big")
                out.append(read_exactly(sock, size))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return out

    assert_fails(nb12.check_fetch_all(nodelay_after_the_loop), "TCP_NODELAY")


# --- Exercise 3: count_bytes(sock) ---------------------------------------------------------


def counter(size):
    def count_bytes(sock):
        total = 0
        while True:
            chunk = sock.recv(size)
            if not chunk:
                return total
            total += len(chunk)

    return count_bytes


def test_count_bytes_other_correct_styles():
    def with_recv_into(sock):
        buffer = bytearray(256 * 1024)
        total = 0
        while n := sock.recv_into(buffer):
            total += n
        return total

    def with_a_for_loop(sock):
        total = 0
        for chunk in iter(lambda: sock.recv(1 << 20), b""):
            total += len(chunk)
        return total

    for correct in (with_recv_into, with_a_for_loop, counter(65536)):
        assert_passes(nb12.check_count_bytes(correct))


def concatenating(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk  # copies all of data each time
    return len(data)


def returns_the_data(sock):
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def never_stops(sock):
    total = 0
    while True:
        try:
            total += len(sock.recv(65536))
        except OSError:
            return total


def one_recv(sock):
    return len(sock.recv(65536))


@pytest.mark.parametrize(
    ("wrong", "words"),
    [
        (counter(1), ["ask for 1 bytes", "system call"]),
        (counter(16), ["16 bytes at a time"]),
        (counter(1024), ["1,024 bytes at a time"]),
        (concatenating, ["data += chunk"]),
        (returns_the_data, ["the count"]),
        (never_stops, ["b''"]),
        (one_recv, ["until it returns b''"]),
    ],
)
def test_count_bytes_wrong_answers(wrong, words):
    assert_fails(nb12.check_count_bytes(wrong), *words)


def test_verdicts_are_the_same_on_every_run():
    first = str(nb12.check_count_bytes(counter(16)))
    assert str(nb12.check_count_bytes(counter(16))) == first
    assert str(nb12.check_fetch_all(fetcher())) == str(nb12.check_fetch_all(fetcher()))
