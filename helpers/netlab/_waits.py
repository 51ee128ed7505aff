"""What each server thread waits on, and until when: the one place that knows.

Rules of this file:
- It imports nothing else of netlab. ``_patches.py`` calls in here from the server's
  threads; ``_server.py`` builds its ``Server`` on ``Group`` and asks ``settled()``.
- A thread counts as *waiting* only while it waits for readiness or for a wake-up
  (trio's rule). It leaves that state before the call that consumes anything (the
  real, non-blocking recv/accept/send comes after), so a byte can never be consumed by
  a thread that looks blocked. Every wait carries its deadline (socket timeout,
  select/selector timeout, asyncio's next timer, a Condition/Event/Queue timeout,
  time.sleep) or None.
- A wait ends *ready* when its fd is ready, its deadline has passed, or someone woke it
  (``Condition.notify``, ``Event.set``, ``Queue.put``, the end of a joined thread):
  the waker marks the sleeper runnable *before* it wakes it. So "every thread of the
  group waits, none is ready" is exact: nothing the group does can change before its
  next deadline unless something outside it acts.

Theory: a group is *settled until t* when every thread waits and none is ready; t is
the earliest deadline that can lead somewhere. A wait whose previous expiry led the
thread straight back to the same wait, with nothing recorded in between, is a poll
loop (socketserver's ``serve_forever`` checks a flag every 0.5 s, an asyncio ticker, a
heartbeat thread): when a thread's wait ran out and it waits again with a deadline
before anything visible happened (output, a send, a close) and before any event woke
it, that deadline is not worth waiting for.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import socket
import threading
import time

IS_WINDOWS = os.name == "nt"
_HAS_POLL = hasattr(select, "poll")


class ServerStopped(BaseException):
    """Raised inside a server's threads by netlab when the server is stopped.

    A BaseException, like SystemExit: ``except Exception`` in a learner's loop does not
    swallow it, so the thread ends.
    """


def block_interrupts() -> None:
    """In a server thread: let the kernel's Interrupt (SIGINT) go to the main thread.

    A signal sent to a process reaches any one thread that does not block it; if it is a
    server thread, the learner's cell is not interrupted. (POSIX only; on Windows the
    console's Ctrl-C always runs in its own thread.)"""
    if hasattr(signal, "pthread_sigmask"):
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        except (OSError, ValueError):
            pass


@contextlib.contextmanager
def interrupts_deferred():
    """In the main thread: hold the kernel's Interrupt (SIGINT) back while netlab holds a
    lock of its own, so that a KeyboardInterrupt can never leave one taken (a
    ``with cond:`` on a Condition is Python code: the interrupt may land after the
    lock is taken and before the block starts). The interrupt is delivered when the
    block ends; waits inside check ``interrupt_pending()`` to end at once."""
    main = threading.current_thread() is threading.main_thread()
    if not main or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)  # a held SIGINT raises here


def interrupt_pending() -> bool:
    return hasattr(signal, "sigpending") and signal.SIGINT in signal.sigpending()


def owner(thread: threading.Thread | None = None):
    """The netlab group (server) that ``thread`` (default: the current one) works for."""
    return getattr(thread or threading.current_thread(), "_netlab_group", None)


def fds_ready(fds) -> bool:
    """True when any (fd, want_write) of ``fds`` is ready now (or closed: it will fail)."""
    try:
        if _HAS_POLL:
            poller = select.poll()
            for fd, want_write in fds:
                if fd < 0:
                    return True
                poller.register(fd, select.POLLOUT if want_write else select.POLLIN)
            return bool(poller.poll(0))
        rlist = [fd for fd, w in fds if not w]
        wlist = [fd for fd, w in fds if w]
        if any(fd < 0 for fd, _ in fds):
            return True
        r, w, _ = select.select(rlist, wlist, [], 0)
        return bool(r or w)
    except (OSError, ValueError):
        return True


class Wait:
    """One wait of one thread: on fds (readiness), a wake-up, or only a deadline."""

    __slots__ = (
        "what",
        "fds",
        "deadline",
        "woken",
        "key",
        "poll_loop",
        "target",
        "timeout",
        "clock_from",
    )

    def __init__(self, what: str, fds=(), deadline=None, key=None, target=None):
        self.what = what  # "socket", "select", "selector", "condition", "join"
        self.fds = fds
        self.deadline = deadline
        self.timeout = None if deadline is None else round(deadline - time.monotonic(), 3)
        self.clock_from = 0  # the waker's clock (see Group.clock)
        self.woken = False
        self.key = key if key is not None else what
        self.poll_loop = False
        self.target = target

    def ready(self, now: float) -> bool:
        if self.woken:
            return True
        if self.deadline is not None and self.deadline <= now:
            return True
        return bool(self.fds) and fds_ready(self.fds)

    def describe(self) -> str:
        return self.what


class _ThreadInfo:
    __slots__ = (
        "wait",
        "activity",
        "idle",
        "activity_at_idle",
        "cycled_epoch",
        "clock",
        "order",
    )

    def __init__(self, order: int = 0, clock: int = 0):
        self.wait: Wait | None = None
        self.clock = clock  # a Lamport clock: see Group.clock
        self.order = order  # the thread's place among the group's threads
        self.activity = 0
        self.idle = False  # its last wait ran out by its deadline (see Group.enter)
        self.activity_at_idle = -1
        self.cycled_epoch = -1  # the last settle during which its poll loop ran out


def deadline_after(timeout) -> float | None:
    if timeout is None:
        return None
    return time.monotonic() + max(0.0, timeout)


class Group:
    """The threads that work for one server, what each waits on, and a way to wake them.

    ``Server`` (``_server.py``) is a Group. The methods below are what ``_patches.py``
    calls from the group's threads; each is documented with the patch that uses it.
    """

    def __init__(self, name: str):
        self.name = name
        self.cond = threading.Condition(threading.Lock())
        self._infos: dict[threading.Thread, _ThreadInfo] = {}
        self._threads_seen = 0
        self._version = 0
        self._epoch = 0
        self.stopping = False  # set by stop(): every wait of the group raises ServerStopped
        # waits of the group's threads that have ended (select(), recv(), sleep(), ...): an
        # idle server ends about one per timeout, a loop that spins on select() thousands a
        # second, however little CPU a busy machine gives it
        self.waits_ended = 0
        self.stop_event = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)

    # --- threads ----------------------------------------------------------------------

    def add_thread(self, thread: threading.Thread) -> None:
        thread._netlab_group = self
        with self.cond:
            parent = self._infos.get(threading.current_thread())
            if thread not in self._infos:
                self._threads_seen += 1
                self._infos[thread] = _ThreadInfo(self._threads_seen, parent.clock if parent else 0)
            self._changed()

    def thread_done(self, thread: threading.Thread) -> None:
        with self.cond:
            done = self._infos.pop(thread, None)
            for info in self._infos.values():
                if info.wait is not None and info.wait.target is thread:
                    info.wait.woken = True
                    if done is not None:
                        info.wait.clock_from = max(info.wait.clock_from, done.clock)
            self._changed()

    def clock(self) -> tuple:
        """The order key of a line the current thread records now: (clock, thread).

        Lamport's clocks: each line ticks its thread's clock; a thread woken by another
        of the group (notify, the end of a joined thread) or started by it takes the
        larger clock. Shown sorted by this key, lines that one thread caused in another
        come after their cause, and lines of threads that ran side by side come in one
        stable order (older thread first) instead of whichever ran first this time.
        Lines of threads outside the group (netlab's own notes) sort last.
        """
        info = self._infos.get(threading.current_thread())
        if info is None:
            return (math.inf, 0)
        info.clock += 1
        return (info.clock, info.order)

    def threads(self) -> list[threading.Thread]:
        with self.cond:
            return list(self._infos)

    def waits(self) -> dict[threading.Thread, Wait | None]:
        with self.cond:
            return {t: i.wait for t, i in self._infos.items()}

    def activity(self) -> None:
        """The current thread did something visible (output, a send, a close).

        Only a thread's own activity counter changes here, by that thread: no lock."""
        info = self._infos.get(threading.current_thread())
        if info is not None:
            info.activity += 1

    def _changed(self) -> None:
        self._version += 1
        self.cond.notify_all()

    # --- entering and leaving waits (called by the patches, in the group's threads) ----

    def enter(self, wait: Wait) -> None:
        me = threading.current_thread()
        with self.cond:
            info = self._infos.get(me)
            if info is None:
                info = self._infos[me] = _ThreadInfo()
            if info.idle and info.activity == info.activity_at_idle and wait.timeout:
                # Its last wait ran out and nothing visible happened since: a poll loop
                # (socketserver's serve_forever, an asyncio ticker, a heartbeat thread).
                wait.poll_loop = True
            info.wait = wait
            self._changed()

    def leave(self, wait: Wait) -> None:
        me = threading.current_thread()
        now = time.monotonic()
        with self.cond:
            info = self._infos.get(me)
            if info is None:
                return
            self.waits_ended += 1
            expired = wait.deadline is not None and wait.deadline <= now and not wait.woken
            info.clock = max(info.clock, wait.clock_from)
            if wait.timeout:  # a select(0) is a look, not a wait: it changes nothing here
                info.idle = expired  # ran out (idle so far), or an event woke it (not idle)
                info.activity_at_idle = info.activity
                if expired and wait.poll_loop:
                    info.cycled_epoch = self._epoch
            info.wait = None
            self._changed()

    def wake(self, wait: Wait) -> None:
        """Mark ``wait`` runnable before its thread is woken (Condition.notify, ...)."""
        with self.cond:
            wait.woken = True
            waker = self._infos.get(threading.current_thread())
            if waker is not None:
                wait.clock_from = max(wait.clock_from, waker.clock)
            self._changed()

    def check_stopping(self) -> None:
        if self.stopping:
            raise ServerStopped(f"netlab stopped server {self.name!r}")

    def wait_fd(self, fd: int, want_write: bool, deadline: float | None, what="socket"):
        """Block until ``fd`` is ready; True, or False at the deadline. Marked waiting
        only while blocked; the stop() wake-up raises ServerStopped."""
        key = (what, fd, want_write)
        wake = self._wake_r.fileno()
        while True:
            self.check_stopping()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            wait = Wait(what, ((fd, want_write),), deadline, key)
            self.enter(wait)
            try:
                ready = _poll_two(
                    fd, want_write, wake, None if deadline is None else deadline - now
                )
            finally:
                self.leave(wait)
            if ready == "wake":
                self.check_stopping()
            elif ready:
                return True

    def wake_all(self) -> None:
        """Wake every fd wait of the group (stop())."""
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def close_wake(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass

    def wake_socket(self) -> socket.socket:
        return self._wake_r

    # --- the main thread's question ----------------------------------------------------

    def settled(self, now: float):
        """(version, t): every thread waits and none is ready, until t (inf if never);
        (version, None) when some thread can run now. Call with ``self.cond`` held."""
        earliest = math.inf
        pending = None  # computed at most once, when a poll loop needs it
        for info in self._infos.values():
            wait = info.wait
            if wait is None or wait.ready(now):
                return self._version, None
            if wait.deadline is None:
                continue
            if wait.poll_loop and pending is None:
                pending = self.pending_input()
            if self._deadline_matters(info, wait, pending):
                earliest = min(earliest, wait.deadline)
        return self._version, earliest

    def pending_input(self) -> bool:
        """True when input waits on a socket of the group that no thread waits on now
        (``Server`` knows its sockets)."""
        return False

    def new_epoch(self) -> None:
        """A settle begins (the end of a cell): every poll loop is awaited once more."""
        with self.cond:
            self._epoch += 1

    def _deadline_matters(self, info: _ThreadInfo, wait: Wait, pending) -> bool:
        """A deadline is awaited unless its wait is a poll loop (see ``enter``). A poll
        loop is awaited for one round per settle while input waits on one of the
        group's sockets that no thread waits on (it polls its way there), but never
        socketserver's serve_forever poll (it only checks its shutdown flag, and
        BaseServer.shutdown tells netlab, see _patches.py)."""
        if not wait.poll_loop:
            return True
        if isinstance(wait.key, tuple) and wait.key[0] == "serve_forever":
            return False
        return bool(pending) and info.cycled_epoch != self._epoch

    def busy_threads(self) -> list[tuple[threading.Thread, Wait | None]]:
        now = time.monotonic()
        with self.cond:
            return [
                (t, i.wait) for t, i in self._infos.items() if i.wait is None or i.wait.ready(now)
            ]


def _poll_two(fd: int, want_write: bool, wake: int, timeout: float | None):
    """Wait until ``fd`` is ready (True), the wake socket is ("wake"), or timeout (False)."""
    if _HAS_POLL:
        poller = select.poll()
        poller.register(fd, select.POLLOUT if want_write else select.POLLIN)
        poller.register(wake, select.POLLIN)
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        events = poller.poll(ms)
        if any(f == wake for f, _ in events):
            return "wake"
        return bool(events)
    rlist = [wake] if want_write else [fd, wake]
    wlist = [fd] if want_write else []
    r, w, x = select.select(rlist, wlist, [fd], timeout)
    if wake in r:
        return "wake"
    return bool(r or w or x)
