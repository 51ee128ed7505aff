"""What server threads write: recorded, bounded, and shown by the main thread in order.

Rules of this file:
- Server threads never print. ``sys.stdout`` and ``sys.stderr`` are wrapped by a
  ``RoutedStream`` that records what a server thread writes (``Log.record``) and
  passes every other thread's writes through untouched.
- Kernel-safe: a RoutedStream, once made, is never freed (``_routers`` keeps it and the
  stream it wraps). CPython 3.11's ``print()`` holds ``sys.stdout`` as a borrowed
  reference, so freeing a stream object that another thread is printing through is a
  use-after-free; netlab never does it, whatever ``redirect_stdout``, ``%%capture`` or
  pytest put in ``sys.stdout`` meanwhile.
- Bounded: a log keeps at most ``KEEP_LINES`` lines, a partial line at most
  ``LINE_LIMIT`` characters, and ``show()`` prints at most ``SHOW_HEAD + SHOW_TAIL``
  lines per call, saying how many it left out.
- An order that is the same on every run: before the main thread prints a line
  (``before_main_write``, set by ``_server.py``), each server finishes what it can do
  now and its lines are shown first; the rest when netlab knows it has settled (end of
  the cell, ``show()``, ``stop()``). Within one show, lines sort by their order keys
  (``Group.clock``: Lamport clocks across a server's threads).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading

from ._waits import ServerStopped, owner

KEEP_LINES = 20_000
RUNAWAY_LINES = 5_000  # recorded in one cell without a pause: a loop that never ends
LINE_LIMIT = 8_192
SHOW_HEAD = 250
SHOW_TAIL = 50

_routers: dict[tuple[int, str], tuple[object, RoutedStream]] = {}
_routers_lock = threading.Lock()
# Held for good: where a stopped server's rogue printers wait. A plain Lock, which netlab's
# waits do not handle (an Event wait would raise ServerStopped in that thread again).
_PARKED = threading.Lock()
_PARKED.acquire()
before_main_write = None  # set by _server.py: shows the lines known to come first
_main_at_line_start = {"stdout": True, "stderr": True}


class Log:
    """The lines one server wrote, in the order they were recorded."""

    def __init__(self, label: str, on_runaway, clock=None):
        self.label = label
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str, tuple]] = []  # (stream, line, order key)
        self._clock = clock or (lambda: (0, 0))  # the order key of a line (Group.clock)
        self._first = 0  # number of the first line kept (older ones were dropped)
        self._shown = 0  # number of the next line to show
        self._partial: dict[tuple[int, str], str] = {}
        self._on_runaway = on_runaway
        self.closed = False  # set when the server has stopped: late writes end the thread
        self.runaway = False
        self._refused: set[int] = set()
        self.sink = None  # a widget's writer (Server.log_widget): lines go there instead

    # --- recording (any thread) ---------------------------------------------------------

    def record(self, stream: str, text: str) -> None:
        if self.closed:
            self._refuse()
        key = (threading.get_ident(), stream)
        with self._lock:
            if self.runaway:
                raise ServerStopped("netlab: this server printed too much")
            pieces = (self._partial.pop(key, "") + text).split("\n")
            last = pieces.pop()
            while len(last) > LINE_LIMIT:
                pieces.append(last[:LINE_LIMIT])
                last = last[LINE_LIMIT:]
            if last:
                self._partial[key] = last
            if pieces:
                self._append(stream, pieces, self._clock())
            runaway = self._first + len(self._lines) - self._shown >= RUNAWAY_LINES
            if runaway:
                self.runaway = True
        if runaway:
            self._on_runaway()
            raise ServerStopped("netlab: this server printed too much")

    def _refuse(self) -> None:
        """A thread of a stopped server prints: end it. One that survives ServerStopped and
        prints again is parked for good, so that it cannot spin and slow the kernel."""
        me = threading.get_ident()
        if me in self._refused:
            _PARKED.acquire()  # never released
        self._refused.add(me)
        raise ServerStopped("netlab: this server was stopped; its threads may not print")

    def note(self, stream: str, line: str) -> None:
        order = self._clock()
        with self._lock:
            self._append(stream, line.split("\n"), order)

    def _append(self, stream: str, lines, order=(math.inf, 0)) -> None:
        self._lines.extend((stream, line, order) for line in lines)
        excess = len(self._lines) - KEEP_LINES
        if excess > 0:
            del self._lines[:excess]
            self._first += excess

    def end_thread(self, ident: int) -> None:
        """A thread ended: what it wrote without a final newline becomes a line."""
        with self._lock:
            for key in [k for k in self._partial if k[0] == ident]:
                self._append(key[1], [self._partial.pop(key)], self._clock())

    def end_all(self) -> None:
        with self._lock:
            for key in list(self._partial):
                self._append(key[1], [self._partial.pop(key)])

    # --- reading (the main thread) -------------------------------------------------------

    def text(self) -> str:
        with self._lock:
            return "".join(f"{line}\n" for _, line, _ in self._lines)

    def take(self) -> tuple[list[tuple[str, str]], int]:
        """The lines not shown yet, and how many were dropped because the log is bounded."""
        with self._lock:
            end = self._first + len(self._lines)
            start = max(self._shown, self._first)
            dropped = start - self._shown
            entries = self._lines[start - self._first : end - self._first]
            self._shown = max(self._shown, end)
        return _in_order(entries), dropped

    def pending(self) -> bool:
        with self._lock:
            return self._first + len(self._lines) > self._shown

    def show(self) -> None:
        entries, dropped = self.take()
        emit(self.label, entries, dropped)


def _in_order(entries) -> list[tuple[str, str]]:
    """(stream, line) pairs sorted by their order keys (see Group.clock); stable."""
    return [(stream, line) for stream, line, _ in sorted(entries, key=lambda e: e[2])]


def emit(label: str, entries, dropped: int = 0) -> None:
    """Print a server's lines, labelled, straight to the streams the router wraps."""
    if dropped:
        entries = [("stdout", f"(netlab: {dropped} earlier lines were not kept)")] + list(entries)
    if len(entries) > SHOW_HEAD + SHOW_TAIL:
        left_out = len(entries) - SHOW_HEAD - SHOW_TAIL
        entries = (
            list(entries[:SHOW_HEAD])
            + [("stdout", f"(netlab: {left_out} more lines not shown; srv.output() has them)")]
            + list(entries[-SHOW_TAIL:])
        )
    other = {"stdout": "stderr", "stderr": "stdout"}
    for stream in {other[name] for name, _ in entries}:
        # What was written before on the other stream is sent first: the kernel buffers
        # each stream on its own, and a server's stderr line would overtake the main
        # thread's stdout on screen (within one stream the order is kept anyway).
        target = _raw(stream)
        if target is not None:
            with contextlib.suppress(OSError, ValueError):
                target.flush()
    for stream, line in entries:
        target = _raw(stream)
        if target is None:
            continue
        target.write(f"{label} {line}\n" if line else f"{label}\n")
    for stream in {s for s, _ in entries}:
        target = _raw(stream)
        if target is not None:
            try:
                target.flush()
            except (OSError, ValueError):
                pass


def _raw(stream: str):
    current = getattr(sys, stream, None)
    while isinstance(current, RoutedStream):
        current = current._netlab_wrapped
    return current


class RoutedStream:
    """Stands in for sys.stdout / sys.stderr: server threads' writes are recorded.

    Every other thread writes straight through to the stream it wraps, and every
    attribute the kernel or a library looks up is the wrapped stream's.
    """

    def __init__(self, stream, name: str):
        self._netlab_wrapped = stream
        self._netlab_name = name

    def write(self, text):
        group = owner()
        if group is None:
            if threading.current_thread() is threading.main_thread() and text:
                name = self._netlab_name
                if _main_at_line_start[name] and before_main_write is not None:
                    before_main_write()
                _main_at_line_start[name] = text.endswith("\n")
            return self._netlab_wrapped.write(text)
        group.record_output(self._netlab_name, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if owner() is None:
            return self._netlab_wrapped.flush()
        return None

    def __getattr__(self, name):
        return getattr(self._netlab_wrapped, name)


def route_output() -> None:
    """Make sure sys.stdout and sys.stderr record server threads' output.

    Called by every ``serve()``: the kernel, pytest or ``%%capture`` may have put a new
    stream in place since the last call. The router made for a stream is reused, and
    kept for the life of the process (see the rules above).
    """
    with _routers_lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if stream is None or isinstance(stream, RoutedStream):
                continue
            kept = _routers.get((id(stream), name))
            if kept is None:
                kept = (stream, RoutedStream(stream, name))
                _routers[(id(stream), name)] = kept
            setattr(sys, name, kept[1])
