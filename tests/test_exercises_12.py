"""Notebook 12's checks pass the reference solutions and correct answers in other styles,
and catch the mistakes learners make when they measure, each with the hint that names the
real cause.

Real sockets on 127.0.0.1, no mocks. The checks judge timing only against what they
measure in the same run (a window, a gap, a ratio), so these tests hold on a busy machine.
"""

import os
import socket
import struct
import threading
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


def assert_fails_with(verdict, what, hint):
    """Failed, with ``what`` in what happened and ``hint`` in the hint."""
    assert_fails(verdict, hint)
    assert what in verdict.failure.what, str(verdict)


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
        # clock starts after sendall(): its figure is far too high, or (when sendall() had
        # to wait on a busy machine) a few per cent too high; either hint names the start
        (meter(1e-6, start_late=True), ["it just before the first send"]),
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
        (counter(256), ["256 bytes at a time"]),  # 1 KiB sits nearer the line (median 0.12)
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


# --- The independent review's attempts (/work/notes/attempts/nb12), copied as they were ----


def review_c1_perf_counter_sendall(port, nbytes):
    data = b"x" * nbytes
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(data)
        reply = b""
        while len(reply) < 2:
            chunk = s.recv(2 - len(reply))
            if not chunk:
                break
            reply += chunk
        t1 = time.perf_counter()
    return nbytes / (t1 - t0) / 1e6


def review_c2_monotonic_chunks(port, nbytes):
    chunk = bytes(65536)
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    try:
        start = time.monotonic()
        left = nbytes
        while left > 0:
            n = s.send(chunk[: min(left, len(chunk))])
            left -= n
        buf = b""
        while not buf.endswith(b"ok"):
            r = s.recv(16)
            if not r:
                break
            buf += r
        end = time.monotonic()
    finally:
        s.close()
    return (nbytes / 1_000_000) / (end - start)


def review_c3_perf_counter_ns_converted(port, nbytes):
    payload = os.urandom(nbytes)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.perf_counter_ns()
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    got = sock.makefile("rb").read()  # reads b"ok" until the server closes
    t1 = time.perf_counter_ns()
    sock.close()
    assert got == b"ok", got
    seconds = (t1 - t0) / 1e9
    return nbytes / 1e6 / seconds


def review_c4_time_time_memoryview(port, nbytes):
    buf = memoryview(bytearray(nbytes))
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.time()
        sent = 0
        while sent < nbytes:
            sent += s.send(buf[sent : sent + (1 << 20)])
        ok = b""
        while ok != b"ok":
            ok += s.recv(2)
        t1 = time.time()
    return nbytes / (t1 - t0) * 1e-6


def review_c5_timer_includes_connect(port, nbytes):
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"\0" * nbytes)
        s.recv(2)
    return nbytes / 1e6 / (time.perf_counter() - t0)


@pytest.mark.parametrize(
    "correct",
    [
        review_c1_perf_counter_sendall,
        review_c2_monotonic_chunks,
        review_c3_perf_counter_ns_converted,
        review_c4_time_time_memoryview,
        review_c5_timer_includes_connect,  # connecting inside the clock: well under 1 ms
    ],
)
def test_throughput_review_correct_attempts_pass(correct):
    assert_passes(nb12.check_throughput(correct))


def review_w8_integer_division(port, nbytes):
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(bytes(nbytes))
        s.recv(2)
        dt = time.perf_counter() - t0
    return (nbytes // 1_000_000) // dt


def review_w9_no_wait_for_ok(port, nbytes):
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.perf_counter()
    s.sendall(bytes(nbytes))
    dt = time.perf_counter() - t0
    s.close()
    return nbytes / 1e6 / dt


def review_w11_seconds_per_mb(port, nbytes):
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(bytes(nbytes))
        s.recv(2)
        dt = time.perf_counter() - t0
    return dt / (nbytes / 1e6)


def review_w16_mb_as_1024000(port, nbytes):
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(bytes(nbytes))
        s.recv(2)
        dt = time.perf_counter() - t0
    return nbytes / 1_024_000 / dt


def review_w18_mib_with_urandom_payload(port, nbytes):
    payload = os.urandom(nbytes)  # random bytes, built before the clock starts
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(payload)
        s.recv(2)
        dt = time.perf_counter() - t0
    return nbytes / 2**20 / dt  # MiB/s


def review_w19_clock_includes_payload_generation(port, nbytes):
    t0 = time.perf_counter()
    payload = os.urandom(nbytes)  # generating the data is timed too
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.recv(2)
    return nbytes / 1e6 / (time.perf_counter() - t0)


def review_w20_mib_payload_bytes_x(port, nbytes):
    payload = b"x" * nbytes
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t0 = time.perf_counter()
        s.sendall(payload)
        s.recv(2)
        t1 = time.perf_counter()
        s.shutdown(socket.SHUT_RDWR)
    time.sleep(0.05)  # "let the server finish" before returning
    return nbytes / (1 << 20) / (t1 - t0)


def review_w21_mib_with_pattern_payload(port, nbytes):
    payload = bytes(i % 256 for i in range(nbytes))  # slow to build, untimed
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(payload)
        s.recv(2)
        dt = time.perf_counter() - t0
    return nbytes / 1048576 / dt  # MiB/s


def review_w22_clock_includes_pattern_build(port, nbytes):
    t0 = time.perf_counter()
    payload = bytes(i % 256 for i in range(nbytes))  # built inside the timed region
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(payload)
        s.recv(2)
    return nbytes / 1e6 / (time.perf_counter() - t0)


def review_w23_mib_pattern_plus_megabit_confusion(port, nbytes):
    payload = bytes(i % 256 for i in range(nbytes))
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(payload)
        s.recv(2)
        dt = time.perf_counter() - t0
    return nbytes / 1024 / 1000 / dt  # "KiB/1000": 2.4% low


def review_w24_overcounts_last_chunk(port, nbytes):
    chunk_size = 65536
    block = bytes(chunk_size)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        left = nbytes
        while left > 0:
            s.sendall(block[: min(left, chunk_size)])
            left -= chunk_size
            sent += chunk_size  # counts a whole chunk even for the short last one
        s.recv(2)
        dt = time.perf_counter() - t0
    return sent / 1e6 / dt


def review_w4_stop_after_sendall(port, nbytes):
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(bytes(nbytes))
        dt = time.perf_counter() - t0
        s.recv(2)
    return nbytes / 1e6 / dt


@pytest.mark.parametrize(
    ("wrong", "what", "hint"),
    [
        (review_w8_integer_division, "0.0", "`//` rounds down"),
        (review_w9_no_wait_for_ok, "before the server's reply", "wait for the reply"),
        (review_w11_seconds_per_mb, "seconds per MB", "Return a rate"),
        (review_w16_mb_as_1024000, "1,024,000 bytes", "not 1,024 x 1,000"),
        (review_w18_mib_with_urandom_payload, "MiB/s", "1,048,576 bytes"),
        (review_w19_clock_includes_payload_generation, "ran longer", "os.urandom"),
        (review_w20_mib_payload_bytes_x, "MiB/s", "1,048,576 bytes"),
        (review_w21_mib_with_pattern_payload, "MiB/s", "1,048,576 bytes"),
        (review_w22_clock_includes_pattern_build, "ran longer", "Build the bytes"),
        (review_w23_mib_pattern_plus_megabit_confusion, "1,024,000 bytes", "1,024 x 1,000"),
        (review_w24_overcounts_last_chunk, "a few per cent too high", "last chunk is shorter"),
        (review_w4_stop_after_sendall, "too high", "sendall() returns once"),
    ],
)
def test_throughput_review_wrong_attempts(wrong, what, hint):
    assert_fails_with(nb12.check_throughput(wrong), what, hint)


review_recv_exactly = sol12.recv_exactly  # the notebook's, section 2


def review_ex2_w9_decoded_strings(port, keys):
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for key in keys:
            sock.sendall(len(key).to_bytes(4, "big") + key)
            size = int.from_bytes(review_recv_exactly(sock, 4), "big")
            values.append(review_recv_exactly(sock, size).decode())
    return values


def review_ex2_w15_skip_empty(port, keys):
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for key in keys:
            sock.sendall(len(key).to_bytes(4, "big") + key)
            size = int.from_bytes(review_recv_exactly(sock, 4), "big")
            if not size:
                continue
            values.append(review_recv_exactly(sock, size))
    return values


def test_fetch_all_review_wrong_attempts():
    verdict = nb12.check_fetch_all(review_ex2_w9_decoded_strings)
    assert_fails(verdict, "as bytes", "decode()")
    assert "str 'A'" in verdict.failure.what
    verdict = nb12.check_fetch_all(review_ex2_w15_skip_empty)
    assert_fails(verdict, "append b''")
    assert "the empty value is missing" in verdict.failure.what


def review_ex2_c4_pipelined_all_at_once(port, keys):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(len(k).to_bytes(4, "big") + k for k in keys))
        vals = []
        for _ in keys:
            n = int.from_bytes(review_recv_exactly(sock, 4), "big")
            vals.append(review_recv_exactly(sock, n))
    return vals


def review_ex2_c7_nodelay_before_connect(port, keys):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    try:
        values = []
        for key in keys:
            sock.sendall(struct.pack("!I", len(key)))
            sock.sendall(key)
            (size,) = struct.unpack("!I", review_recv_exactly(sock, 4))
            values.append(review_recv_exactly(sock, size))
        return tuple(values)
    finally:
        sock.close()


def review_ex2_w16_nodelay_after_request_1(port, keys):
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for i, key in enumerate(keys):
            sock.sendall(len(key).to_bytes(4, "big"))
            sock.sendall(key)
            if i == 0:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            size = int.from_bytes(review_recv_exactly(sock, 4), "big")
            values.append(review_recv_exactly(sock, size))
    return values


@pytest.mark.parametrize(
    "correct",
    [
        review_ex2_c4_pipelined_all_at_once,
        review_ex2_c7_nodelay_before_connect,
        # TCP_NODELAY from request 2 on: the task text says request 1 is not counted
        review_ex2_w16_nodelay_after_request_1,
    ],
)
def test_fetch_all_review_correct_attempts_pass(correct):
    assert_passes(nb12.check_fetch_all(correct))


def review_ex3_w4_bytearray_concat(sock):
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return len(data)


def review_ex3_w5_list_keep(sock):
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return sum(len(c) for c in chunks)


def review_ex3_w11_makefile_read(sock):
    return len(sock.makefile("rb").read())


def review_ex3_w13_recv_into_64mb_buffer(sock):
    buf = bytearray(64_000_000)  # one buffer big enough for everything
    view = memoryview(buf)
    total = 0
    while n := sock.recv_into(view[total:]):
        total += n
    return total


def review_ex3_w14_recv_100mb_bufsize(sock):
    total = 0
    while chunk := sock.recv(100_000_000):
        total += len(chunk)
    return total


def review_ex3_w15_timeout_means_done(sock):
    sock.settimeout(0.001)
    total = 0
    try:
        while chunk := sock.recv(65536):
            total += len(chunk)
    except TimeoutError:
        pass
    return total


def review_ex3_w16_msg_peek(sock):
    total = 0
    while chunk := sock.recv(65536, socket.MSG_PEEK):  # peeks, never consumes
        total += len(chunk)
    return total


def review_ex3_w17_none_instead_of_empty(sock):
    total = 0
    while True:
        chunk = sock.recv(65536)
        if chunk is None:  # b'' is not None: never stops
            break
        total += len(chunk)
    return total


def review_ex3_w18_nonblocking_spin(sock):
    sock.setblocking(False)
    total = 0
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            continue  # busy-waits
        if not chunk:
            return total
        total += len(chunk)


@pytest.mark.parametrize(
    ("wrong", "what", "hint"),
    [
        (review_ex3_w4_bytearray_concat, "memory grew", "kept the data"),
        (review_ex3_w5_list_keep, "memory grew", "a list of chunks"),
        (review_ex3_w11_makefile_read, "memory grew", "makefile().read()"),
        (review_ex3_w13_recv_into_64mb_buffer, "memory grew", "a buffer that big"),
        (review_ex3_w14_recv_100mb_bufsize, "memory grew", "100,000,000 bytes at a time"),
        (counter(16 << 20), "memory grew", "16,777,216 bytes at a time"),
        (review_ex3_w15_timeout_means_done, "timed out in the pause", "not the end"),
        (review_ex3_w16_msg_peek, "MSG_PEEK", "without taking it"),
        (review_ex3_w17_none_instead_of_empty, "did not return", "is None` is never true"),
        (review_ex3_w18_nonblocking_spin, "BlockingIOError", "busy loop"),
    ],
)
def test_count_bytes_review_wrong_attempts(wrong, what, hint):
    assert_fails_with(nb12.check_count_bytes(wrong), what, hint)


def review_ex3_c2_recv_into_1mib(sock):
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    while n := sock.recv_into(view):
        total += n
    return total


def review_ex3_c4_recv_256kib(sock):
    n = 0
    data = sock.recv(256 * 1024)
    while data:
        n += len(data)
        data = sock.recv(256 * 1024)
    return n


@pytest.mark.parametrize(
    "correct",
    [review_ex3_c2_recv_into_1mib, review_ex3_c4_recv_256kib, counter(16384), counter(4096)],
)
def test_count_bytes_review_correct_attempts_pass(correct):
    assert_passes(nb12.check_count_bytes(correct))


# --- The newcomer walkthrough (/work/notes/reviews/nb12-walkthrough.md) -------------------


def test_the_reference_meter_waits_for_a_reply_that_comes_in_two_pieces():
    """recv(2) may return b'o' alone: the solution reads on until both bytes came."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)
        port = listener.getsockname()[1]
        nbytes = 100_000

        def serve():
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                got = 0
                while got < nbytes:
                    got += len(conn.recv(65536))
                conn.sendall(b"o")
                time.sleep(0.05)  # the scenario: the second byte comes later, alone
                conn.sendall(b"k")

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        assert sol12.throughput(port, nbytes) > 0
        server.join(5)


def without_imports(source, name):
    """The learner's function as it is after a kernel restart: its cell ran, the imports
    cell and section 2 did not (no socket, no time, no recv_exactly)."""
    namespace = {}
    exec(source, namespace)  # noqa: S102 - the test's own source text
    return namespace[name]


@pytest.mark.parametrize(
    ("check", "source", "name"),
    [
        (
            nb12.check_throughput,
            "def throughput(port, nbytes):\n"
            "    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:\n"
            "        sock.sendall(bytes(nbytes))\n"
            "    return 1.0\n",
            "throughput",
        ),
        (
            nb12.check_fetch_all,
            "def fetch_all(port, keys):\n    return [recv_exactly(None, 4) for key in keys]\n",
            "fetch_all",
        ),
        (
            nb12.check_count_bytes,
            "def count_bytes(sock):\n"
            "    total = 0\n"
            "    start = time.perf_counter()\n"
            "    while chunk := sock.recv(65536):\n"
            "        total += len(chunk)\n"
            "    return total\n",
            "count_bytes",
        ),
    ],
)
def test_a_name_error_after_a_restart_says_which_cells_to_run(check, source, name):
    verdict = check(without_imports(source, name))
    assert_fails_with(verdict, "NameError", "Run the imports cell")
    assert "section 2" in verdict.hint, str(verdict)


def walk_ex3_concat_bytes_recv_4096(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk  # quadratic: copies all of data at every step
    return len(data)


def walk_ex3_counts_byte_by_byte(sock):
    total = 0
    while chunk := sock.recv(65536):
        for _ in chunk:  # keeps nothing, but a Python step per byte
            total += 1
    return total


def test_count_bytes_quadratic_concat_is_diagnosed_first_whatever_the_recv_size():
    verdict = nb12.check_count_bytes(walk_ex3_concat_bytes_recv_4096)
    assert_fails_with(verdict, "memory grew", "quadratic")
    assert "4,096 bytes at a time" not in verdict.hint, str(verdict)


def test_count_bytes_never_passes_a_reader_too_slow_to_be_measured():
    """A reader that keeps nothing but is too slow to finish gets ✗, not an unmeasured ✓."""
    verdict = nb12.check_count_bytes(walk_ex3_counts_byte_by_byte)
    assert_fails(verdict, "what your loop does with each chunk")
    assert "✓" not in str(verdict), str(verdict)


def hiccup_then_timeout_means_done(sock):
    """Takes a timeout for the end, and stalls 0.3 s once near half-way, as a reader on a
    busy machine that is not scheduled for a while (the stall is the scenario)."""
    sock.settimeout(0.001)
    total, stalled = 0, False
    try:
        while chunk := sock.recv(65536):
            total += len(chunk)
            if total >= 30_000_000 and not stalled:
                stalled = True
                time.sleep(0.3)
    except TimeoutError:
        pass
    return total


def test_count_bytes_pause_begins_when_the_reader_waits_so_a_late_reader_meets_it():
    """The sender's pause begins once the reader has drained the queue and waits in
    recv(): a reader that is late to drain it still meets the pause, and its 1 ms timeout
    taken for the end is caught. (Paused just after sending half, as before, the 0.3 s
    stall outlasted the 0.2 s pause: the reader never timed out, and 3 of 3 runs passed
    the count.) A correct reader with the same stall still passes."""
    for _ in range(3):
        verdict = nb12.check_count_bytes(hiccup_then_timeout_means_done)
        assert_fails_with(verdict, "timed out in the pause", "not the end")

    def correct_with_a_stall(sock):
        total, stalled = 0, False
        while chunk := sock.recv(65536):
            total += len(chunk)
            if total >= 30_000_000 and not stalled:
                stalled = True
                time.sleep(0.3)
        return total

    verdict = nb12.check_count_bytes(correct_with_a_stall)
    assert "✓ counts 64,000,000 bytes" in str(verdict), str(verdict)


def walk_ex3_stops_at_a_short_read(sock):
    """A newcomer's reader (walkthrough): a chunk shorter than asked taken for the end."""
    total = 0
    while True:
        chunk = sock.recv(65536)
        total += len(chunk)
        if len(chunk) < 65536:
            return total


def test_count_bytes_a_short_read_taken_for_the_end_is_named():
    verdict = nb12.check_count_bytes(walk_ex3_stops_at_a_short_read)
    assert_fails_with(verdict, "before recv() had returned b''", "a chunk shorter than n is not")
