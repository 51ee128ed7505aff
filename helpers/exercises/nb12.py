"""Exercises of notebook 12, performance.

    nb12.check_throughput(throughput)       # a throughput meter that says MB/s truly
    nb12.check_fetch_all(fetch_all)         # a client without the Nagle stall
    nb12.check_count_bytes(count_bytes)     # a recv size that does not waste the time

Rules of this file. A timing check must not fail a correct answer on a busy machine, so
no check compares a figure with a fixed number of seconds or MB/s:
- the throughput meter's answer is compared with a window that the check measures in the
  same run (from what its own server saw, and how long the learner's call took);
- the Nagle stall is measured by the check's server, as the gap between the first and the
  last byte of one request (about 40 ms with the stall, microseconds without it);
- a recv loop's speed is a ratio to a reference loop, measured alternately on the same
  transfers, median of five.
Every wait is bounded (socket timeouts, threads joined with a timeout), and a verdict's
text holds no timing or port, so it is the same on every run.
"""

from __future__ import annotations

import contextlib
import math
import platform
import socket
import statistics
import struct
import sys
import threading
import time

from helpers.exercises._checker import (
    Failure,
    accept_ours,
    call_bounded,
    describe_exception,
    describe_value,
    returned_none,
    run_checks,
)

SERVER_TIMEOUT = 3.0


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(SERVER_TIMEOUT)
    return listener


def _closing(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


# --- Exercise 1: throughput(port, nbytes) --------------------------------------------------

# The kernel stamps each packet as it arrives (SO_TIMESTAMPNS, socket(7); Python's socket
# module has no name for it: 35 on Linux but for sparc and parisc). Then the server knows
# when the first byte came even if its thread woke late. Elsewhere it notes its own time.
_SO_TIMESTAMPNS = (
    35
    if sys.platform == "linux" and not platform.machine().startswith(("sparc", "parisc"))
    else None
)
# how coarse a learner's clock may be (time.monotonic() ticks at 15.6 ms on older Windows)
_RESOLUTION = max(time.get_clock_info(c).resolution for c in ("time", "monotonic", "perf_counter"))


def _kernel_stamp(ancillary) -> float | None:
    """The arrival time (perf_counter's scale) of a read's packets, from SO_TIMESTAMPNS."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) in (8, 16):
            seconds, nanoseconds = struct.unpack("qq" if len(data) == 16 else "ii", data)
            # the stamp is wall-clock time: shift it onto perf_counter's scale
            return seconds + nanoseconds / 1e9 - (time.time() - time.perf_counter())
    return None


class ConfirmingSink:
    """Receives ``nbytes``, then (after ``pause`` seconds of "storing" them) answers b"ok"
    and closes. ``read_pause`` slows its reading down (a slow disk behind it).

    It notes when the first byte arrived (``first``, the kernel's stamp where there is
    one) and when it sent b"ok" (``confirmed``): a true meter's clock starts before the
    first byte leaves and stops after b"ok" arrives, so it reads at least
    ``confirmed - first``, and (started just before the first byte, stopped as b"ok"
    came) hardly more.
    """

    def __init__(self, nbytes: int, pause: float = 0.0, read_pause: float = 0.0):
        self.nbytes = nbytes
        self.pause = pause
        self.read_pause = read_pause
        self.received = 0
        self.first: float | None = None
        self.confirmed: float | None = None
        self.connections = 0
        self.stopping = threading.Event()
        self.listener = _listener()
        self.stamps = False
        if _SO_TIMESTAMPNS is not None:
            with contextlib.suppress(OSError):  # accepted sockets inherit the option
                self.listener.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.stamps = True
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, name="exercise-sink", daemon=True)
        self.thread.start()

    def _first_read(self, conn: socket.socket, buffer: bytearray) -> int:
        if not self.stamps:
            n = conn.recv_into(buffer)
            self.first = time.perf_counter()
            return n
        n, ancillary, _, _ = conn.recvmsg_into([buffer], socket.CMSG_SPACE(16))
        now = time.perf_counter()
        stamp = _kernel_stamp(ancillary)
        self.first = stamp if stamp is not None and stamp <= now + 0.001 else now
        return n

    def _run(self) -> None:
        try:
            conn, _ = accept_ours(self.listener)
        except OSError:
            return
        self.connections += 1
        with conn:
            conn.settimeout(SERVER_TIMEOUT)
            buffer = bytearray(65536)
            try:
                while self.received < self.nbytes:
                    n = conn.recv_into(buffer) if self.received else self._first_read(conn, buffer)
                    if not n:
                        return  # the meter closed before sending everything
                    self.received += n
                    if self.read_pause and self.stopping.wait(self.read_pause):
                        return  # the pause is the scenario (a slow reader), not a sync
                if self.pause and self.stopping.wait(self.pause):
                    return
                self.confirmed = time.perf_counter()
                conn.sendall(b"ok")
            except OSError:
                return

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.thread.join(SERVER_TIMEOUT + 1.0)


HINT_MB = (
    "1 MB is 1,000,000 bytes (1 MiB, 1,048,576 bytes, is another unit): "
    "MB/s = nbytes / 1_000_000 / seconds."
)
HINT_TOO_SHORT = (
    "Your clock ran for less time than the transfer took. Start it just before the first "
    "sendall() and stop it after the server's b'ok' has arrived: sendall() returns once "
    "the bytes are in your kernel's send buffer, long before the server has them. "
    "(time.process_time() counts only CPU time, not waiting: use time.perf_counter().)"
)
HINT_A_BIT_HIGH = (
    "Either you counted more bytes than were sent (a loop that adds a whole chunk each time, "
    "though the last chunk is shorter: add what was really sent, or use nbytes), or your "
    "clock started after the first bytes had left: start it just before the first send."
)
HINT_TOO_LONG = (
    "Your clock ran longer than the transfer. Build the bytes (os.urandom, a loop over "
    "nbytes: that takes time) and connect before you start it; start it just before the "
    "first sendall() and stop it as soon as b'ok' has arrived."
)
HINT_INTEGER = (
    "`//` rounds down to a whole number (nbytes // 1_000_000 is 0 below a million bytes): "
    "divide with /, MB/s = nbytes / 1_000_000 / seconds."
)
# (factor, what, hint): the answer stands for the elapsed time times ``factor``: the error
# that these units make
UNIT_MISTAKES = [
    (1.048576, "in MiB/s", HINT_MB),
    (
        1.024,
        "in units of 1,024,000 bytes (1024 x 1000)",
        "1 MB is 1,000,000 bytes, not 1,024 x 1,000: MB/s = nbytes / 1_000_000 / seconds.",
    ),
    (1 / 8, "in megabits per second", "A byte is 8 bits: return megabytes, do not multiply by 8."),
    (
        1 / 8 * 1.048576,
        "in mebibits per second",
        "A byte is 8 bits, and 1 MB is 1,000,000 bytes: nbytes / 1_000_000 / seconds.",
    ),
    (1e-6, "in bytes per second", "Divide by 1,000,000 for MB/s."),
    (1e-3, "in kilobytes per second", "Divide by 1,000,000 (not 1,000) for MB/s."),
    (
        1e9,
        "a billion times too small",
        "Your elapsed time is in nanoseconds (perf_counter_ns()): divide it by 1e9 to get seconds.",
    ),
    (
        1e6,
        "a million times too small",
        "Your elapsed time is in microseconds, or you divided by 1e12: MB/s = nbytes / "
        "1_000_000 / seconds.",
    ),
    (
        1e3,
        "1,000 times too small",
        "Your elapsed time is in milliseconds, or the figure is in GB/s: MB/s = nbytes / "
        "1_000_000 / seconds, with seconds in seconds.",
    ),
]
HINT_RATE = "Return a rate, megabytes per second: nbytes / 1_000_000 / seconds."
LOW_SLACK = 0.005  # a true clock reads at least the server's window: 0.5 % + 1 ms below it
# ...and, started just before the first byte and stopped at b'ok', at most 0.1 % + 6 ms
# above it (connecting inside the clock costs well under 1 ms on loopback)
TIGHT_REL, TIGHT_ABS = 0.001, 0.006
TIGHT_TRIALS = 5  # the machine may be busy at one b'ok': the best of up to 5 transfers counts


def _lowest(low: float) -> float:
    return low * (1 - LOW_SLACK) - 0.001 - _RESOLUTION


def _within(seconds: float, low: float, high: float) -> bool:
    return _lowest(low) <= seconds <= high * 1.01 + 0.001 + _RESOLUTION


def _fits_tight(seconds: float, low: float) -> bool:
    return _lowest(low) <= seconds <= low * (1 + TIGHT_REL) + TIGHT_ABS + _RESOLUTION


def check_throughput(throughput) -> object:
    """``throughput(port, nbytes)`` sends nbytes, waits for b"ok", returns MB/s."""

    def measure(nbytes: int, pause: float, read_pause: float, sent: str):
        """One call against a fresh server: (the answer, the server's window, the call's
        duration), or a Failure for a call that did not transfer or did not return a
        number."""
        sink = ConfirmingSink(nbytes, pause, read_pause)
        span = {}

        def timed(port, n):
            span["start"] = time.perf_counter()
            try:
                return throughput(port, n)
            finally:
                span["end"] = time.perf_counter()

        try:
            call = call_bounded(timed, sink.port, nbytes, timeout=6.0, on_timeout=sink.close)
        finally:
            sink.close()
        if not call.finished:
            if sink.received < nbytes:
                raise Failure(
                    f"it was still running 6 s later; the server had received "
                    f"{sink.received:,} of {nbytes:,} bytes",
                    "Send all the bytes with sendall() (send() may send only part).",
                    sent,
                )
            raise Failure(
                "it was still running 6 s later, after the server had sent b'ok' and closed",
                "Read the server's reply (recv() returns b'ok', then b'' as it closes), "
                "then return.",
                sent,
            )
        if call.error is not None:
            raise Failure(
                f"it raised {describe_exception(call.error)}",
                "Connect to ('127.0.0.1', port), sendall() nbytes, read the reply b'ok', "
                "and return the figure.",
                sent,
            )
        if sink.connections == 1 and sink.received == nbytes and sink.confirmed is None:
            raise Failure(
                f"it returned before the server's reply: the server had all {nbytes:,} bytes "
                "but had not said b'ok' yet",
                "The bytes are not stored when sendall() returns (they sit in buffers): wait "
                "for the reply, sock.recv(2) == b'ok', then stop the clock and return.",
                sent,
            )
        if sink.connections != 1 or sink.received != nbytes or sink.confirmed is None:
            if sink.received > nbytes:
                what = f"the server received {sink.received:,} bytes, more than {nbytes:,}"
            else:
                what = f"the server received {sink.received:,} of {nbytes:,} bytes"
            raise Failure(
                what,
                "Send exactly nbytes bytes on one connection, with sendall(), and wait for "
                "the reply before you return.",
                sent,
            )
        returned_none(call.result, sent)
        value = call.result
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Failure(
                f"it returned {describe_value(value)}",
                "Return the figure as a number (a float): nbytes / 1_000_000 / seconds.",
                sent,
            )
        if value == 0:
            raise Failure(f"it returned {value!r}", HINT_INTEGER, sent)
        if not math.isfinite(value) or value < 0:
            raise Failure(
                f"it returned {value!r}",
                "Elapsed time was 0 or negative: measure with time.perf_counter() (or "
                "perf_counter_ns()) before the first sendall() and after the reply.",
                sent,
            )
        return value, sink.confirmed - sink.first, span["end"] - span["start"]

    def judge(nbytes: int, value, low: float, high: float, sent: str) -> None:
        """The answer's time lies in [low, high] (server's window, call's duration), or a
        Failure names the unit or the clock."""
        seconds = nbytes / (value * 1e6)  # the elapsed time this answer stands for
        if _within(seconds, low, high):
            return
        whole = float(value).is_integer() and seconds > high
        if _within(value, low, high):
            raise Failure("it returned the elapsed time in seconds, not a rate", HINT_RATE, sent)
        if _within(value * nbytes / 1e6, low, high):
            raise Failure("it returned seconds per MB, not MB per second", HINT_RATE, sent)
        for factor, unit, hint in UNIT_MISTAKES:
            if _within(seconds / factor, low, high):
                raise Failure(f"the figure is {unit}, not MB/s", hint, sent)
        if whole:
            raise Failure(f"it returned {value!r}, a whole number, too low", HINT_INTEGER, sent)
        if seconds < _lowest(low):
            if seconds >= 0.9 * low:
                raise Failure(
                    "the figure is a few per cent too high: the transfer took longer than it says",
                    HINT_A_BIT_HIGH,
                    sent,
                )
            raise Failure(
                "the figure is too high: the transfer took longer than your clock says",
                HINT_TOO_SHORT,
                sent,
            )
        raise Failure(
            "the figure is too low: your clock says the transfer took longer than your "
            "whole function ran",
            "Compute MB/s = nbytes / 1_000_000 / seconds, with seconds measured by "
            "time.perf_counter() around the transfer (before sendall, after the reply).",
            sent,
        )

    def transfer(nbytes: int, pause: float, read_pause: float, sent: str) -> None:
        value, low, high = measure(nbytes, pause, read_pause, sent)
        judge(nbytes, value, low, high, sent)

    def tight(nbytes: int, pause: float, sent: str) -> None:
        """Up to TIGHT_TRIALS transfers; one whose clock fits the server's window closely
        passes (the others may have met a busy machine as b'ok' came back)."""
        best = None
        for trial in range(TIGHT_TRIALS):
            value, low, high = measure(nbytes, pause, 0.0, sent)
            judge(nbytes, value, low, high, sent)  # never below the window, whatever else
            seconds = nbytes / (value * 1e6)
            if _fits_tight(seconds, low):
                return
            over = seconds / low
            best = over if best is None else min(best, over)
            if trial and best > 1.25:
                break  # a quarter longer than the transfer, twice: no busy moment does that
        for factor, unit, hint in UNIT_MISTAKES[:2]:
            if _fits_tight(best / factor, 1.0) or abs(best / factor - 1) <= TIGHT_REL:
                raise Failure(f"the figure is {unit}, not MB/s", hint, sent)
        raise Failure(
            "the figure is too low: your clock ran longer than the transfer (longer than "
            "from the first byte's arrival to the server's b'ok', on every try)",
            HINT_TOO_LONG,
            sent,
        )

    return run_checks(
        "throughput(port, nbytes)",
        [
            (
                "500,000 bytes; the server confirms 0.25 s after it has them all",
                lambda: transfer(500_000, 0.25, 0.0, "nbytes=500000, b'ok' 0.25 s late"),
            ),
            (
                "8,000,000 bytes to a server that reads slowly",
                lambda: transfer(8_000_000, 0.0, 0.002, "nbytes=8000000, a slow reader"),
            ),
            (
                "8,000,000 bytes, b'ok' 0.6 s late: the clock runs just for the transfer",
                lambda: tight(
                    8_000_000, 0.6, f"nbytes=8000000, b'ok' 0.6 s late, up to {TIGHT_TRIALS} times"
                ),
            ),
        ],
        function=throughput,
    )


# --- Exercise 2: fetch_all(port, keys) -----------------------------------------------------


class KeyValueServer:
    """Answers each request (4-byte big-endian length, then the key) with the value
    (4-byte length, then key.upper()), on any number of connections.

    For each request it notes the time from its first byte to its last: the Nagle stall
    shows there (the second write waits for an ACK that the server delays by 40 ms on
    Linux), however fast or slow the machine.
    """

    MAX_KEY = 1 << 20

    def __init__(self):
        self.gaps: list[float] = []
        self.keys: list[bytes] = []
        self.connections = 0
        self.problem: str | None = None
        self.stopping = threading.Event()
        self.listener = _listener()
        self.listener.settimeout(0.2)  # so that the loop sees `stopping`
        self.port = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, name="exercise-kv", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = accept_ours(self.listener)
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(
                target=self._serve, args=(conn,), name="exercise-kv-conn", daemon=True
            )
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(SERVER_TIMEOUT)
            pending = bytearray()
            first = None
            try:
                while not self.stopping.is_set():
                    chunk = conn.recv(65536)
                    if not chunk:
                        if pending:
                            self.problem = (
                                f"the connection closed in a request ({len(pending)} bytes)"
                            )
                        return
                    if first is None:
                        first = time.perf_counter()
                    pending += chunk
                    while len(pending) >= 4:
                        size = int.from_bytes(pending[:4], "big")
                        if size > self.MAX_KEY:
                            self.problem = (
                                f"a request's header said {size:,} bytes: the header must be the "
                                "key's length, 4 bytes big-endian"
                            )
                            return
                        if len(pending) < 4 + size:
                            break
                        key = bytes(pending[4 : 4 + size])
                        del pending[: 4 + size]
                        self.gaps.append(time.perf_counter() - first)
                        self.keys.append(key)
                        first = time.perf_counter() if pending else None
                        value = key.upper()
                        conn.sendall(len(value).to_bytes(4, "big") + value)
            except TimeoutError:
                if pending:
                    self.problem = (
                        f"a request stopped after {len(pending)} bytes (nothing more for "
                        f"{SERVER_TIMEOUT:g} s)"
                    )
            except OSError:
                return

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.thread.join(1.0)
        for thread in self.threads:
            thread.join(SERVER_TIMEOUT + 1.0)


STALL = 0.015  # a median gap above 15 ms is the stall (40 ms on Linux), not a busy machine
HINT_STALL = (
    "Nagle's algorithm holds your second small write until the server ACKs the first, and "
    "the server delays that ACK (40 ms on Linux) because it has nothing to send yet. Send "
    "the header and the key in one sendall() (header + key), or set "
    "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) before the loop (level "
    "IPPROTO_TCP, not SOL_SOCKET). TCP_QUICKACK on your side does not help: the delayed "
    "ACK is the server's."
)


def check_fetch_all(fetch_all) -> object:
    """``fetch_all(port, keys)`` returns the values on one connection, without stalling."""

    def run(keys: list[bytes], sent: str) -> KeyValueServer:
        server = KeyValueServer()
        try:
            call = call_bounded(fetch_all, server.port, list(keys), timeout=8.0)
        finally:
            server.close()
        if not call.finished:
            raise Failure(
                "it was still running 8 s later",
                server.problem
                and f"The server says: {server.problem}."
                or "Read each reply whole: 4 bytes of length, then that many bytes.",
                sent,
            )
        if call.error is not None:
            hint = "Send each request as the header (4 bytes, big-endian) and the key; read "
            hint += "the reply's 4-byte length, then the value."
            if server.problem:
                hint = f"The server says: {server.problem}. " + hint
            if isinstance(call.error, PermissionError):
                hint = (
                    "setsockopt raised PermissionError: check the level and the name, "
                    "sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)."
                )
            raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
        if server.problem:
            raise Failure(
                server.problem,
                "Each request is the key's length (4 bytes, big-endian), then the key.",
                sent,
            )
        returned_none(call.result, sent)
        expected = [k.upper() for k in keys]
        got = call.result
        if (
            not isinstance(got, list | tuple)
            or [bytes(v) for v in got if isinstance(v, bytes | bytearray)] != expected
        ):
            wrong = (
                next(
                    (
                        i
                        for i, (a, b) in enumerate(zip(got, expected, strict=False))
                        if not isinstance(a, bytes | bytearray) or bytes(a) != b
                    ),
                    None,
                )
                if isinstance(got, list | tuple)
                else None
            )
            if wrong is not None:
                what = (
                    f"value {wrong + 1} (key of {len(keys[wrong]):,} bytes) came back as "
                    f"{describe_value(got[wrong])}"
                )
            else:
                what = f"it returned {describe_value(got)}, not the {len(keys)} values"
            raise Failure(
                what,
                "recv(n) returns up to n bytes: read the 4-byte length, then loop until you "
                "have that many bytes (recv_exactly), for every reply.",
                sent,
            )
        if server.connections > 1:
            raise Failure(
                f"it opened {server.connections} connections for {len(keys)} keys",
                "Use one connection for all the keys: a new connection costs a handshake "
                "each time, and only hides the stall (a fresh connection ACKs at once for its "
                "first exchanges).",
                sent,
            )
        return server

    def stall():
        keys = [f"key-{i}".encode() for i in range(20)]
        server = run(keys, "20 keys of 5-6 bytes")
        middle = statistics.median(server.gaps[1:])  # a new connection's first exchange is quick
        if middle > STALL:
            raise Failure(
                "the server waited more than 15 ms between the first and the last byte of a "
                "request (the median of 19 requests)",
                HINT_STALL,
                "20 keys of 5-6 bytes",
            )

    return run_checks(
        "fetch_all(port, keys)",
        [
            (
                "three keys come back as their values",
                lambda: run([b"a", b"bc", b"def"], "[b'a', b'bc', b'def']"),
            ),
            (
                "a 200 KB key and an empty one",
                lambda: run([b"x" * 200_000, b"", b"y"], "[b'x' * 200_000, b'', b'y']"),
            ),
            ("20 small requests without a stall", stall),
        ],
        function=fetch_all,
    )


# --- Exercise 3: count_bytes(sock) ---------------------------------------------------------


class RecordingSocket(socket.socket):
    """A real socket that notes the sizes its user asks recv() for, and what it got."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []
        self.received = 0

    def recv(self, bufsize, flags=0):
        self.asked.append(bufsize)
        data = super().recv(bufsize, flags)
        self.received += len(data)
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        self.asked.append(nbytes or len(buffer))
        n = super().recv_into(buffer, nbytes, flags)
        self.received += n
        return n


TRANSFER = 64_000_000
BUDGET = 1.0  # a reader that has not finished within 1 s is slower than 64 MB/s
ROUNDS = 5  # pairs of transfers (reference, learner's); the median ratio counts
RATIO = 0.2  # passes at a fifth of the reference's speed or better


def reference_count(sock) -> int:
    total = 0
    while chunk := sock.recv(65536):
        total += len(chunk)
    return total


def _timed_read(reader, total: int = TRANSFER):
    """Run ``reader(sock)`` while a thread sends ``total`` bytes; return
    (call, seconds, received, asked) with seconds cut at BUDGET."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(SERVER_TIMEOUT)
        sock = RecordingSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(SERVER_TIMEOUT)
        sock.connect(listener.getsockname())
        sender, _ = listener.accept()
    sender.settimeout(SERVER_TIMEOUT)
    block = memoryview(bytes(range(256)) * 4096)  # 1 MiB

    def send():
        try:
            left = total
            while left:
                piece = block[: min(left, len(block))]
                sender.sendall(piece)
                left -= len(piece)
            sender.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    thread = threading.Thread(target=send, name="exercise-sender", daemon=True)
    span = {}

    def timed(s):
        span["start"] = time.perf_counter()
        try:
            return reader(s)
        finally:
            span["end"] = time.perf_counter()

    try:
        thread.start()
        started = time.perf_counter()
        call = call_bounded(timed, sock, timeout=BUDGET, on_timeout=lambda: _closing(sock))
        if call.finished:
            seconds = span["end"] - span["start"]
            received = sock.received
        else:
            seconds = time.perf_counter() - started
            received = sock.received
    finally:
        _closing(sender)
        _closing(sock)
        thread.join(SERVER_TIMEOUT)
    return call, seconds, received, list(sock.asked)


def check_count_bytes(count_bytes) -> object:
    """``count_bytes(sock)`` reads until EOF, returns the count, at a fair speed."""
    state = {}

    def counts():
        call, seconds, received, asked = _timed_read(count_bytes)
        state["first"] = (call, seconds, received, asked)
        sent = f"{TRANSFER:,} bytes, then the sender closes"
        if not call.finished:
            if received >= TRANSFER:
                raise Failure(
                    "it did not return after the sender had closed",
                    "recv() returns b'' at the end of the stream: stop there (`if not chunk: "
                    "break`, compare with b'').",
                    sent,
                )
            return  # too slow to finish: the next check says why
        if call.error is not None:
            raise Failure(
                f"it raised {describe_exception(call.error)}",
                "Read with sock.recv(size) in a loop until it returns b''; add len(chunk) up.",
                sent,
            )
        returned_none(call.result, sent)
        result = call.result
        if isinstance(result, bytes | bytearray):
            raise Failure(
                f"it returned the bytes ({len(result):,} of them), not their number",
                "Return the count, an int: add up len(chunk) (and keep no copy of the data).",
                sent,
            )
        if isinstance(result, bool) or not isinstance(result, int) or result != TRANSFER:
            raise Failure(
                f"it returned {describe_value(result)}",
                "Add up len(chunk) of every recv() until it returns b'', and return the sum.",
                sent,
            )

    def fast_enough():
        call, seconds, received, asked = state["first"]
        ratios = []
        learner_rates = [received / seconds]
        reference_rates = []
        for index in range(ROUNDS):
            _, ref_seconds, ref_received, _ = _timed_read(reference_count)
            reference_rates.append(ref_received / ref_seconds)
            if index:
                call, seconds, received, asked = _timed_read(count_bytes)
                learner_rates.append(received / seconds)
            ratios.append(learner_rates[-1] / reference_rates[-1])
            if not call.finished and index == 0:
                break  # a reader cut off at BUDGET is far below RATIO: one round says it
        ratio = statistics.median(ratios)
        if ratio >= RATIO:
            return
        typical = statistics.median(asked) if asked else 0
        what = (
            f"it read at {_times(ratio)} the speed of a recv(65536) loop on the same "
            "transfers (a fifth passes)"
        )
        if typical and typical < 8192:
            hint = (
                f"Your reads ask for {typical:,.0f} bytes at a time. Each recv() is a system "
                "call with a fixed cost, whatever it returns: ask for more per call "
                "(65536, or 1 MiB), and the same data takes far fewer calls."
            )
        elif typical >= 8 << 20:
            hint = (
                f"Your reads ask for {typical:,.0f} bytes at a time: recv(n) first allocates "
                "n bytes, and returns at most what the socket buffer holds. 64 KiB to 1 MiB "
                "is plenty."
            )
        else:
            hint = (
                "Your recv size is fine: the time goes elsewhere. Keeping the data costs: "
                "`data += chunk` on bytes copies everything received so far at every step, "
                "and even a list of chunks fills memory. Count len(chunk) and keep nothing."
            )
        raise Failure(what, hint, f"{TRANSFER:,} bytes, {ROUNDS} rounds beside recv(65536)")

    return run_checks(
        "count_bytes(sock)",
        [
            ("counts 64,000,000 bytes and returns at the end", counts),
            ("at least a fifth of the speed of recv(65536)", fast_enough),
        ],
        function=count_bytes,
    )


def _times(ratio: float) -> str:
    """A coarse bin (a verdict shows no exact timing): less than 1/100 of, ..."""
    for bound, words in ((0.01, "less than 1/100 of"), (0.1, "less than 1/10 of")):
        if ratio < bound:
            return words
    return "less than a fifth of"
