"""Exercises of notebook 12, performance.

    nb12.check_throughput(throughput)       # a throughput meter that says MB/s truly
    nb12.check_fetch_all(fetch_all)         # a client without the Nagle stall
    nb12.check_count_bytes(count_bytes)     # a recv size that does not waste the time

Rules of this file. A timing check must not fail a correct answer on a busy machine, so
no check compares a figure with a fixed number of seconds or MB/s:
- the throughput meter's answer is compared with a window that the check measures in the
  same run: never shorter than from the first byte's arrival (the kernel's stamp) to the
  server's b'ok', never longer than the call, and, in the best of up to five tries, hardly
  longer than from the connection to b'ok' (a busy machine may delay one b'ok');
- the Nagle stall is measured by the check's server, as the gap between the first and the
  last byte of one request (about 40 ms with the stall, microseconds without it);
- a recv loop's speed is a ratio to a reference loop, measured alternately on the same
  transfers, median of five; its memory is tracemalloc's peak, not a time.
Every wait is bounded (socket timeouts, threads joined with a timeout), and a verdict's
text holds no timing or port, so it is the same on every run.
"""

from __future__ import annotations

import contextlib
import math
import platform
import select
import socket
import statistics
import struct
import sys
import threading
import time
import tracemalloc

from helpers.exercises._checker import (
    Failure,
    accept_ours,
    call_bounded,
    describe_exception,
    describe_value,
    from_this_process,
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

    It notes when the connection came (``accepted``), when the first byte arrived
    (``first``, the kernel's stamp where there is one) and when it sent b"ok"
    (``confirmed``): a true meter's clock starts before the first byte leaves and stops
    after b"ok" arrives, so it reads at least ``confirmed - first``; started once
    connected (or just before: connecting takes well under a millisecond on loopback)
    and stopped as b"ok" came, hardly more than ``confirmed - accepted``.
    """

    def __init__(self, nbytes: int, pause: float = 0.0, read_pause: float = 0.0):
        self.nbytes = nbytes
        self.pause = pause
        self.read_pause = read_pause
        self.received = 0
        self.first: float | None = None
        self.accepted: float | None = None
        self.confirmed: float | None = None
        self.connections = 0
        self.stopping = threading.Event()
        self.accepting = threading.Event()
        self.listener = _listener()
        self.listener.settimeout(CALL_LIMIT)  # a meter may build its bytes for a while first
        self.stamps = False
        if _SO_TIMESTAMPNS is not None:
            with contextlib.suppress(OSError):  # accepted sockets inherit the option
                self.listener.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self.stamps = True
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, name="exercise-sink", daemon=True)
        self.thread.start()
        self.accepting.wait(SERVER_TIMEOUT)  # its accept() is about to wait for the meter

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
        while True:
            try:
                self.accepting.set()
                conn, peer = self.listener.accept()
            except OSError:
                return
            self.accepted = time.perf_counter()
            with conn:
                if self._serve(conn, peer):
                    return

    def _serve(self, conn: socket.socket, peer) -> bool:
        """Serve one connection; False when it was a stranger's (accept the next)."""
        self.connections += 1
        conn.settimeout(SERVER_TIMEOUT)
        buffer = bytearray(65536)
        try:
            while self.received < self.nbytes:
                n = conn.recv_into(buffer) if self.received else self._first_read(conn, buffer)
                if not n:
                    break  # the meter closed before sending everything
                self.received += n
                if self.read_pause and self.stopping.wait(self.read_pause):
                    break  # the pause is the scenario (a slow reader), not a sync
        except OSError:
            pass
        # accept_ours's test, only now: reading the kernel's tables holds the interpreter
        # for milliseconds, which would delay the meter's clock in between
        if not from_this_process(peer, toward=conn.getsockname()):
            self.connections -= 1
            self.received = 0
            self.first = None
            return False
        if self.received < self.nbytes:
            return True
        try:
            if self.pause and self.stopping.wait(self.pause):
                return True
            self.confirmed = time.perf_counter()
            conn.sendall(b"ok")
        except OSError:
            pass
        return True

    def close(self) -> None:
        self.stopping.set()
        with contextlib.suppress(OSError, ValueError):
            if self.accepted is None and select.select([self.listener], [], [], 0)[0]:
                # a meter that connected, sent and left at once: take its bytes first
                self.thread.join(SERVER_TIMEOUT + 1.0)
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
CALL_LIMIT = 10.0  # seconds for one call (a generator over 8 MB takes one or two)
TIGHT_TRIALS = 5  # the machine may be busy at one b'ok': the best of up to 5 transfers counts


HINT_NAME_ERROR = (
    "A NameError: your function uses {name}, which this kernel does not know (not a "
    "mistake in your logic; after a kernel restart every name is gone). Run the imports "
    "cell at the top of the notebook and section 2's cell (recv_exactly, kv_server), then "
    "your function's cell, then this check."
)


def _raised(error: BaseException, hint: str, sent: str) -> Failure:
    """The failure for a learner's function that raised ``error``: a NameError gets the
    hint to run the cells that define the names, any other error ``hint``."""
    if isinstance(error, NameError):
        name = getattr(error, "name", None)
        hint = HINT_NAME_ERROR.format(name=repr(name) if name else "a name")
    return Failure(f"it raised {describe_exception(error)}", hint, sent)


def _lowest(low: float) -> float:
    return low * (1 - LOW_SLACK) - 0.001 - _RESOLUTION


def _within(seconds: float, low: float, high: float) -> bool:
    return _lowest(low) <= seconds <= high * 1.01 + 0.001 + _RESOLUTION


def _fits_tight(seconds: float, low: float, longest: float, loose: float = 1) -> bool:
    """Within the server's window: from its first byte (or the connection) to its b'ok'
    (``loose`` times the slack, to name a mistake rather than to pass)."""
    top = longest * (1 + TIGHT_REL) + loose * TIGHT_ABS + _RESOLUTION
    return _lowest(low) <= seconds <= top


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
            call = call_bounded(timed, sink.port, nbytes, timeout=CALL_LIMIT, on_timeout=sink.close)
        finally:
            sink.close()
        if not call.finished:
            if not sink.received:
                raise Failure(
                    "it was still running 10 s later, and had not sent a byte",
                    "Build the bytes fast (bytes(nbytes) or b'x' * nbytes: a Python loop over "
                    "millions of bytes takes seconds), connect, and sendall() them.",
                    sent,
                )
            if sink.received < nbytes:
                raise Failure(
                    f"it was still running 10 s later; the server had received "
                    f"{sink.received:,} of {nbytes:,} bytes",
                    "Send all the bytes with sendall() (send() may send only part).",
                    sent,
                )
            raise Failure(
                "it was still running 10 s later, after the server had sent b'ok' and closed",
                "Read the server's reply (recv() returns b'ok', then b'' as it closes), "
                "then return.",
                sent,
            )
        if call.error is not None:
            raise _raised(
                call.error,
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
        low = sink.confirmed - sink.first
        longest = sink.confirmed - min(sink.first, sink.accepted or sink.first)
        return value, low, span["end"] - span["start"], longest

    def mistake(nbytes: int, value, low: float, high: float):
        """(what, hint) of the unit mistake this answer fits, if any."""
        seconds = nbytes / (value * 1e6)
        if _within(value, low, high):
            return "it returned the elapsed time in seconds, not a rate", HINT_RATE
        if _within(value * nbytes / 1e6, low, high):
            return "it returned seconds per MB, not MB per second", HINT_RATE
        for factor, unit, hint in UNIT_MISTAKES:
            if _within(seconds / factor, low, high):
                return f"the figure is {unit}, not MB/s", hint
        return None

    def judge(nbytes: int, value, low: float, high: float, sent: str, again) -> None:
        """The answer's time lies in [low, high] (server's window, call's duration), or a
        Failure names the unit or the clock. A unit is named only when a second transfer
        (``again()``, with another pause) fits it too: a clock stopped after sendall()
        may read 1/1000 of the window once, by chance."""
        seconds = nbytes / (value * 1e6)  # the elapsed time this answer stands for
        if _within(seconds, low, high):
            return
        if any(_within(seconds / factor, low, high) for factor, _, _ in UNIT_MISTAKES[:2]):
            return  # MiB, 1024 x 1000: a few per cent, told apart by the closer look later
        found = mistake(nbytes, value, low, high)
        if found is not None:
            value2, low2, high2, _ = again()
            if mistake(nbytes, value2, low2, high2) == found:
                raise Failure(*found, sent)
        if float(value).is_integer() and seconds > high:
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
        value, low, high, _ = measure(nbytes, pause, read_pause, sent)
        judge(
            nbytes, value, low, high, sent, lambda: measure(nbytes, pause + 0.3, read_pause, sent)
        )

    def tight(nbytes: int, pause: float, sent: str) -> None:
        """Up to TIGHT_TRIALS transfers; one whose clock fits the server's window closely
        passes (the others may have met a busy machine as b'ok' came back)."""
        best = None

        def again():
            return measure(nbytes, 0.1, 0.0, sent)

        for trial in range(TIGHT_TRIALS):
            value, low, high, longest = measure(nbytes, pause, 0.0, sent)
            judge(nbytes, value, low, high, sent, again)  # never below the window
            seconds = nbytes / (value * 1e6)
            # a figure that fits as MB/s and as MiB/s (or 1,024,000 B/s) too tells nothing:
            # on a busy machine the meter's clock may start well after the connection
            # (the window's start), and a unit 2.4 % off then fits; the next try decides
            ambiguous = any(
                _fits_tight(seconds / factor, low, longest) for factor, _, _ in UNIT_MISTAKES[:2]
            )
            if _fits_tight(seconds, low, longest) and not ambiguous:
                return
            if best is None or seconds / longest < best[0] / best[2]:
                best = (seconds, low, longest)
            if trial and best[0] > 1.25 * best[2]:
                break  # a quarter longer than the transfer, twice: no busy moment does that
        for factor, unit, hint in UNIT_MISTAKES[:2]:
            seconds, low, longest = best
            if _fits_tight(seconds / factor, low, longest, 3):
                # a unit scales with the window, a clock started early adds a fixed time:
                # a short window (b'ok' 0.1 s late) tells them apart
                for _ in range(TIGHT_TRIALS):
                    value, low, high, longest = again()
                    if _fits_tight(nbytes / (value * 1e6) / factor, low, longest):
                        raise Failure(f"the figure is {unit}, not MB/s", hint, sent)
                break
        raise Failure(
            "the figure is too low: your clock ran longer than the transfer (longer than "
            "from the connection to the server's b'ok', on every try)",
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
            raise _raised(call.error, hint, sent)
        if server.problem:
            raise Failure(
                server.problem,
                "Each request is the key's length (4 bytes, big-endian), then the key.",
                sent,
            )
        returned_none(call.result, sent)
        expected = [k.upper() for k in keys]
        got = call.result
        if isinstance(got, list | tuple):
            text = next((i for i, v in enumerate(got) if isinstance(v, str)), None)
            if text is not None:
                raise Failure(
                    f"value {text + 1} came back as {describe_value(got[text])}",
                    "Return the values as bytes, as they came from the socket: do not "
                    "decode() them.",
                    sent,
                )
            values = [bytes(v) for v in got if isinstance(v, bytes | bytearray)]
            if len(got) < len(keys) and values == [v for v in expected if v]:
                raise Failure(
                    f"it returned {len(got)} values for {len(keys)} keys: the empty value "
                    "is missing",
                    "An empty value (length 0) is a value too: append b'' for it, or every "
                    "value after it moves up one place in the list.",
                    sent,
                )
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
    """A real socket that notes what its user asks recv() for, and what came of it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[int] = []
        self.received = 0
        self.empties = 0  # b'' returned (the end of the stream), each time
        self.would_block = 0  # BlockingIOError: nothing to read on a non-blocking socket
        self.timeouts = 0  # TimeoutError: nothing came within the socket's timeout
        self.peeked = False  # MSG_PEEK: looks at the data without taking it
        # the read in progress: (when it began, the socket's timeout then), None between
        # reads; while `watched` (the sender's pause waits), `state` is notified as each
        # read begins and ends (only then: a lock per recv() would slow small reads)
        self.reading: tuple[float, float | None] | None = None
        self.active = time.monotonic()  # when a read last began or ended
        self.watched = False
        self.state = threading.Condition()
        self.cut = False  # the check closed the socket: a b'' after that is the check's

    def _notify(self) -> None:
        with self.state:
            self.state.notify_all()

    def _asking(self, size: int, flags: int) -> None:
        self.asked.append(size)
        if flags & getattr(socket, "MSG_PEEK", 0):
            self.peeked = True
        self.active = now = time.monotonic()
        self.reading = (now, self.gettimeout())
        if self.watched:
            self._notify()

    def _done(self) -> None:
        self.reading = None
        self.active = time.monotonic()
        if self.watched:
            self._notify()

    def _failed(self, exc: OSError) -> None:
        if isinstance(exc, BlockingIOError):
            self.would_block += 1
        elif isinstance(exc, TimeoutError):
            self.timeouts += 1

    def recv(self, bufsize, flags=0):
        self._asking(bufsize, flags)
        try:
            data = super().recv(bufsize, flags)
        except OSError as exc:
            self._failed(exc)
            raise
        finally:
            self._done()
        self.received += len(data)
        self.empties += not data and not self.cut
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        self._asking(nbytes or len(buffer), flags)
        try:
            n = super().recv_into(buffer, nbytes, flags)
        except OSError as exc:
            self._failed(exc)
            raise
        finally:
            self._done()
        self.received += n
        self.empties += not n and not self.cut
        return n


TRANSFER = 64_000_000
BUDGET = 1.0  # a reader that has not finished within 1 s is slower than 64 MB/s
ROUNDS = 5  # pairs of transfers (reference, learner's); the median ratio counts
MORE_ROUNDS = 6  # more pairs when that median lies near the line (NEAR of it, either side)
NEAR = 2.0
RATIO = 0.2  # passes at a fifth of the reference's speed or better
MEMORY = 8 << 20  # "keep none of the data": at most 8 MiB at the peak, for 64 MB read
PAUSE = 0.2  # the first transfer stops for 0.2 s half-way (a sender that is slow at times)


def reference_count(sock) -> int:
    total = 0
    while chunk := sock.recv(65536):
        total += len(chunk)
    return total


class Reading:
    """What one read of a transfer gave: the call, its seconds (cut at the budget), the
    bytes received, the socket (what was asked), and the peak memory (when traced)."""

    def __init__(self, call, seconds, received, sock, peak):
        self.call = call
        self.seconds = seconds
        self.received = received
        self.sock = sock
        self.peak = peak


def _cut(sock: RecordingSocket) -> None:
    """The reader overran its budget: close its socket, so that its recv() returns b''
    (or fails), and the end it sees then is not taken for the sender's."""
    sock.cut = True
    _closing(sock)


def _unread(sock: socket.socket) -> int | None:
    """Bytes that wait in ``sock``'s receive queue (FIONREAD), or None where that cannot
    be asked (Windows has no ioctl for it in Python) or the socket is closed."""
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
    except (ImportError, OSError, ValueError, AttributeError):
        return None


def _pause(sock: RecordingSocket, stopping: threading.Event, budget: float) -> bool:
    """The sender's pause half-way (a sender that is slow at times: the scenario, not a
    synchronisation). It begins once the reader has read all that was sent and waits in a
    read that only new data or a timeout can end, and lasts PAUSE; longer while that
    read's own timeout, if shorter than PAUSE, has not had 50 ms beyond it to expire.
    So a reader that takes a timeout for the end of the stream always meets one, however
    slowly a busy machine lets it drain the queue. True: the check is stopping."""
    deadline = time.monotonic() + budget
    with sock.state:
        sock.watched = True

        def waiting() -> bool:  # (or it reads some other way, and 50 ms passed)
            unread = _unread(sock)
            quiet = time.monotonic() - sock.active >= 0.05
            return unread is None or (unread == 0 and (sock.reading is not None or quiet))

        # woken as each read begins and ends; 50 ms at most, for readers that read
        # another way (the queue is asked again)
        while not waiting() and not stopping.is_set() and time.monotonic() < deadline:
            sock.state.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        began = time.monotonic()
        while not stopping.is_set():
            end = began + PAUSE
            if sock.reading is not None:
                since, timeout = sock.reading
                if timeout is not None and timeout < PAUSE:
                    end = max(end, since + timeout + 0.05)
            left = min(end, deadline) - time.monotonic()
            if left <= 0:
                break
            sock.state.wait(left)
        sock.watched = False
    return stopping.is_set()


def _timed_read(reader, total: int = TRANSFER, budget: float = BUDGET, first=False):
    """Run ``reader(sock)`` while a thread sends ``total`` bytes. ``first``: the sender
    pauses half-way, and the reader's peak memory is traced (tracemalloc)."""
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
    stopping = threading.Event()

    def send():
        try:
            left = total
            while left:
                piece = block[: min(left, len(block))]
                sender.sendall(piece)
                left -= len(piece)
                if first and left <= total // 2 < left + len(piece):
                    if _pause(sock, stopping, budget):
                        return
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

    # traced from here, and stopped here too, even if the reader never returns
    tracing = first and not tracemalloc.is_tracing()
    try:
        if tracing:
            tracemalloc.start()
        if first:
            tracemalloc.reset_peak()
            span["base"] = tracemalloc.get_traced_memory()[0]
        thread.start()
        started = time.perf_counter()
        call = call_bounded(timed, sock, timeout=budget, on_timeout=lambda: _cut(sock))
        if call.finished:
            seconds = span["end"] - span["start"]
        else:
            seconds = time.perf_counter() - started
        received = sock.received
        if first:  # read here: the reader may still be running
            span["peak"] = tracemalloc.get_traced_memory()[1] - span["base"]
    finally:
        if tracing:
            tracemalloc.stop()
        stopping.set()
        with sock.state:
            sock.state.notify_all()  # a pause ends
        _closing(sender)
        _closing(sock)
        thread.join(SERVER_TIMEOUT)
    return Reading(call, seconds, received, sock, span.get("peak"))


HINT_PEEK = (
    "recv(n, socket.MSG_PEEK) looks at the data without taking it: every call returns the "
    "same bytes again, and b'' never comes. Call sock.recv(size) without flags."
)


HINT_SHORT_NOT_END = (
    "recv(n) returns what has arrived, up to n bytes: a chunk shorter than n is not the end "
    "of the stream, more may be on its way. Only b'' means that the sender closed: call "
    "recv() again and add up len(chunk) until it returns b''."
)


def _asked(sock: RecordingSocket) -> float:
    return statistics.median(sock.asked) if sock.asked else 0


def _slow_hint(typical: float) -> str:
    """Why a counter that keeps no data is slow: tiny recv sizes, or work per chunk."""
    if typical and typical < 8192:
        return (
            f"Your reads ask for {typical:,.0f} bytes at a time. Each recv() is a system "
            "call with a fixed cost, whatever it returns: ask for more per call "
            "(65536, or 1 MiB), and the same data takes far fewer calls."
        )
    return (
        "Your recv size is fine: the time goes elsewhere, in what your loop does with each "
        "chunk. Count len(chunk) and do nothing else with it."
    )


def check_count_bytes(count_bytes) -> object:
    """``count_bytes(sock)`` reads until EOF, returns the count, keeps no data, at a
    fair speed."""
    sent = f"{TRANSFER:,} bytes (a {PAUSE:g} s pause half-way), then the sender closes"

    def kept_too_much(reading) -> None:
        sock = reading.sock
        if reading.peak is not None and reading.peak > MEMORY:
            typical = _asked(sock)
            what = f"its memory grew by more than {MEMORY >> 20} MiB while it read"
            if typical >= 4 << 20:
                hint = (
                    f"Your reads ask for {typical:,.0f} bytes at a time: recv(n) first "
                    "allocates n bytes (and recv_into needs a buffer that big). 64 KiB to "
                    "1 MiB is plenty; reuse one buffer with recv_into, or let recv() "
                    "allocate a small one."
                )
            else:
                hint = (
                    "Your function kept the data: `data += chunk` (bytes or bytearray), a "
                    "list of chunks, or makefile().read() hold all of it (and `+=` on bytes "
                    "also copies everything received so far at every step: quadratic time, "
                    "whatever the recv size). Count len(chunk) and keep nothing: the chunk "
                    "is dropped at the next recv()."
                )
            raise Failure(what, hint, sent)

    def counts():
        reading = _timed_read(count_bytes, budget=3.0, first=True)
        call, sock = reading.call, reading.sock
        if sock.peeked:
            raise Failure("it read with MSG_PEEK", HINT_PEEK, sent)
        if sock.would_block > 100:
            raise Failure(
                "recv() raised BlockingIOError over and over: the loop spun while no data had come",
                "On a non-blocking socket recv() raises at once when nothing has come, and "
                "`continue` turns that into a busy loop at 100 % CPU. Leave the socket "
                "blocking (it waits in the kernel, using no CPU) and stop at b''; or wait "
                "for readability with selectors before each recv().",
                sent,
            )
        if not call.finished and sock.empties > 1:
            raise Failure(
                "it did not return after the sender had closed",
                "recv() returns b'' at the end of the stream: stop there (`if not "
                "chunk: break`, compare with b''; `chunk is None` is never true).",
                sent,
            )
        if not call.finished:
            kept_too_much(reading)
            if sock.empties:
                raise Failure(
                    "it did not return after the sender had closed",
                    "recv() returns b'' at the end of the stream: stop there and return.",
                    sent,
                )
            # not finished, memory measured and small: it counts, too slowly to finish
            raise Failure(
                "it had not returned 3 s after the transfer began (its memory stayed small: it "
                "was just slow)",
                _slow_hint(_asked(sock)),
                sent,
            )
        if call.error is not None:
            raise _raised(
                call.error,
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
        if sock.timeouts and not sock.empties and result != TRANSFER:
            raise Failure(
                f"it returned {describe_value(result)} when a recv() timed out in the pause",
                "A timeout is not the end of the stream: the sender may just be slow. Only "
                "b'' means that it closed: keep a timeout that only a vanished sender "
                "reaches (seconds, not milliseconds), and stop at b''.",
                sent,
            )
        counted = isinstance(result, int) and not isinstance(result, bool)
        if counted and result < TRANSFER and not sock.empties and not sock.timeouts:
            raise Failure(
                f"it returned {describe_value(result)} before recv() had returned b'' (the "
                "sender had not closed yet)",
                HINT_SHORT_NOT_END,
                sent,
            )
        if not counted or result != TRANSFER:
            raise Failure(
                f"it returned {describe_value(result)}",
                "Add up len(chunk) of every recv() until it returns b'', and return the sum.",
                sent,
            )
        kept_too_much(reading)

    def fast_enough():
        ratios = []
        last = None
        for round_ in range(ROUNDS + MORE_ROUNDS):
            if round_ == ROUNDS and not RATIO / NEAR <= statistics.median(ratios) < RATIO * NEAR:
                break  # clearly on one side of the line: five rounds say it
            ref = _timed_read(reference_count)
            last = _timed_read(count_bytes)
            ratios.append((last.received / last.seconds) / (ref.received / ref.seconds))
            if not last.call.finished:
                break  # a reader cut off at BUDGET is far below RATIO: one round says it
        ratio = statistics.median(ratios)
        if ratio >= RATIO:
            return
        what = (
            f"it read at {_times(ratio)} the speed of a recv(65536) loop on the same "
            "transfers (a fifth passes)"
        )
        raise Failure(
            what,
            _slow_hint(_asked(last.sock)),
            f"{TRANSFER:,} bytes, {ROUNDS} rounds beside recv(65536) ({ROUNDS + MORE_ROUNDS} "
            "when the median is near the line)",
        )

    return run_checks(
        "count_bytes(sock)",
        [
            ("counts 64,000,000 bytes, keeps none of them, returns at the end", counts),
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
