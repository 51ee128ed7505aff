"""Run a learner's server function in a background thread, and show what it did.

Rules of this file:
- ``serve()`` returns only once the server listens (TCP) or is bound (UDP). It learns
  that from the learner's own ``listen()``/``bind()`` call (``_patches.py``): no
  sleeps, and no test connection that would use up the learner's ``accept()``.
- Server threads never print. What they write and what they raise is recorded
  (``_output.Log``) and shown by the main thread, labelled with the server's name.
- "The server has nothing more to say" is known exactly (``_waits.py``): ``show()``
  first waits until the server is *settled*: every thread waits on something that is
  not ready, and no deadline within ``SETTLE_TIMEOUT`` is pending. A server that is
  still busy at that bound never settles by itself (a loop without socket calls, or a
  wait netlab cannot see): netlab stops it and says where it was, the same on every run.
- The lifecycle is one state with named transitions (``State``); an illegal transition
  raises ``LifecycleError`` naming both states.
- ``stop()`` is idempotent and bounded in time, also when interrupted: it wakes every
  wait netlab knows (they raise ``ServerStopped`` in the server's threads), cancels an
  asyncio server's tasks, shuts down and closes the sockets (which frees the port even
  if a thread is stuck), and, for a thread still running Python code, raises
  ``ServerStopped`` in it.

Why SO_REUSEADDR: a server that closes a connection first leaves it in TIME_WAIT for
up to a minute, and on Linux and macOS a new server cannot bind that port meanwhile
unless SO_REUSEADDR is set. Re-running a notebook cell must work, so netlab sets it on
the TCP sockets its servers bind (as ``http.server.HTTPServer`` does; socketserver's
``TCPServer`` does not by default). It does not set it on Windows, where the option
lets a second socket take a port that is in use (notebook 02 shows both).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import enum
import errno
import inspect
import socket
import sys
import threading
import time
import traceback
import weakref

from . import _output, _patches
from ._addresses import connectable, format_address, is_wildcard
from ._ports import choose_port, free_port, preferred_port, preferred_reason
from ._states import in_flight, table_source
from ._tracebacks import format_traceback, where
from ._waits import (
    IS_WINDOWS,
    Group,
    ServerStopped,
    block_interrupts,
    fds_ready,
    interrupt_pending,
    interrupts_deferred,
)

READY_TIMEOUT = 5.0
SETTLE_TIMEOUT = 5.0
PRINT_SETTLE = 1.0
STOP_TIMEOUT = 2.0
_TRACE_PREVIEW = 40
_INET = (socket.AF_INET, socket.AF_INET6)

_registry: dict[str, Server] = {}
_registry_lock = threading.Lock()


class ServerError(RuntimeError):
    """A server run by netlab failed; the message says what to do, the cause has the traceback."""


class LifecycleError(RuntimeError):
    """A server was asked to go from one state to another that cannot follow it."""


class State(enum.Enum):
    STARTING = "starting"  # the thread runs; listen() not called yet
    RUNNING = "running"  # listening (TCP) or bound (UDP)
    FINISHED = "finished"  # the server function returned or raised
    STOPPING = "stopping"  # stop() is at work
    STOPPED = "stopped"  # stop() is done: threads ended (or reported), sockets closed


_TRANSITIONS = {
    State.STARTING: {State.RUNNING, State.FINISHED, State.STOPPING},
    State.RUNNING: {State.FINISHED, State.STOPPING},
    State.FINISHED: {State.STOPPING},
    State.STOPPING: {State.STOPPED},
    State.STOPPED: set(),
}


def _preview(data) -> str:
    shown = bytes(data[:_TRACE_PREVIEW])
    more = "..." if len(data) > _TRACE_PREVIEW else ""
    return f"{shown!r}{more}"


class Server(Group):
    """A handle on a server that netlab runs in a background thread.

    >>> with netlab.serve(server) as srv:          # server(port) is your function
    ...     client(srv.port)

    Attributes: ``name``, ``host`` and ``port`` (where a client connects), ``address``,
    ``bound_address`` (what the server bound), ``state``, ``running``, ``errors``,
    ``sockets``, ``socketserver``, ``threads``. Methods: ``show()``, ``wait()``,
    ``wait_quiet()``, ``stop()``, ``output()``, ``log_widget()``.
    """

    def __init__(self, target, args, name: str, port: int, trace: bool):
        super().__init__(name)
        self.host = "127.0.0.1"
        self.port = port
        self.bound_address: tuple | None = None
        self.trace = trace
        self.log = _output.Log(f"[{name}]", self._printed_too_much, self.clock)
        self._target = target
        self._args = args
        self._state = State.STARTING
        self._state_lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._socketservers: list = []  # kept: srv.socketserver works after the function returns
        self._conditions: weakref.WeakSet = weakref.WeakSet()
        self._loops: weakref.WeakSet = weakref.WeakSet()
        self._errors: list[BaseException] = []
        self._ready = threading.Event()
        self._started = threading.Event()  # ready, or finished before it was
        self._finished = threading.Event()
        self._executor: _patches.GroupExecutor | None = None
        self._eof_counts: dict[int, int] = {}
        self._stop_reason: str | None = None
        self._main: threading.Thread | None = None
        self._widget = None
        self.silent = False  # serve(announce=False): recorded, never printed
        self.print_settle_failed = False  # this cell's prints stopped waiting for it

    # --- what the learner sees -------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state.value

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return self._state in (State.STARTING, State.RUNNING)

    @property
    def errors(self) -> list[BaseException]:
        """The exceptions the server's threads raised (not those caused by stop())."""
        with self.cond:
            return list(self._errors)

    @property
    def sockets(self) -> list[socket.socket]:
        """The server's sockets that are still open (listening and accepted ones)."""
        return [s for s in list(self._sockets) if s.fileno() != -1]

    @property
    def socketserver(self):
        """The socketserver (or http.server) object the server function created, if any."""
        found = list(self._socketservers)
        return found[-1] if found else None

    @property
    def stop_reason(self) -> str | None:
        """Why netlab stopped the server by itself (a loop on b'', too much output, a
        server that never settled), or None."""
        return self._stop_reason

    @property
    def threads(self) -> list[threading.Thread]:
        return super().threads()

    def __repr__(self) -> str:
        return f"<netlab server {self.name!r} on {format_address(self.address)}, {self.state}>"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        """Everything the server wrote so far, as one string (whether shown or not)."""
        return self.log.text()

    def show(self, wait: float = SETTLE_TIMEOUT, *, kernel: bool = True) -> None:
        """Print what the server wrote since the last ``show()``, labelled ``[name]``.

        First waits (at most ``wait`` seconds) until the server is settled, so that what
        it writes in reaction to a cell is shown by that same cell. A server still busy
        at that bound is stopped, with a line that says where it was.
        """
        self.print_settle_failed = False
        if wait and self.running:
            if not self.wait_quiet(wait, kernel=kernel):
                self._stop_reason = self._stop_reason or self._busy_reason(wait)
        if self._stop_reason is not None and self._state is not State.STOPPED:
            self.stop()
            return
        self._print_log()

    def wait(self, timeout: float = 5.0) -> None:
        """Wait until the server function returns, then show its output.

        Raises ServerError if it crashed, TimeoutError if it is still running.
        """
        if not _interruptible_wait(self._finished, timeout):
            raise TimeoutError(
                f"netlab: server {self.name!r} is still running after {timeout:g} s "
                f"(waiting in accept() or recv() for a client?). Use {self._handle()}.stop() "
                "to stop it."
            )
        self.wait_quiet()
        self._print_log()
        self._raise_if_crashed()

    def _handle(self) -> str:
        """The name the learner's namespace has for this server (``srv`` if none)."""
        try:
            from IPython import get_ipython

            namespace = get_ipython().user_ns
        except Exception:  # no IPython, or no shell
            return "srv"
        names = sorted(k for k, v in list(namespace.items()) if v is self and k[:1] != "_")
        return names[0] if names else "srv"

    def wait_quiet(
        self, timeout: float = SETTLE_TIMEOUT, *, kernel: bool = True, deadlines: bool = True
    ) -> bool:
        """Wait until the server is settled (see the rules above); False if it is still
        busy after ``timeout`` seconds. ``kernel=False`` skips asking the kernel about
        bytes in flight (serve() does, when no client can know the port yet);
        ``deadlines=False`` does not wait for the deadlines of waits ("settled now")."""
        with interrupts_deferred():
            return self._wait_quiet(timeout, kernel, deadlines)

    def _wait_quiet(self, timeout: float, kernel: bool, deadlines: bool) -> bool:
        horizon = time.monotonic() + timeout
        if deadlines:
            self.new_epoch()
        while True:
            if interrupt_pending():
                return False  # the Interrupt button: end now, it is raised on the way out
            with self.cond:
                while True:
                    if self._stop_reason is not None or not self._infos:
                        return True
                    now = time.monotonic()
                    version, until = self.settled(now)
                    if until is not None:
                        break
                    if now >= horizon or interrupt_pending():
                        return False  # (a held Interrupt ends the wait: interrupts_deferred)
                    self.cond.wait(min(horizon - now, _SLICE))
            if kernel and self._in_flight():
                if time.monotonic() >= horizon:
                    return False
                with self.cond:
                    self.cond.wait(0.005)  # look again: the data is on its way
                continue
            with self.cond:
                if self._version != version:
                    continue  # something changed meanwhile: look again
                if until > horizon or not deadlines:
                    return True
                # let a near deadline pass, then look again
                self.cond.wait(min(max(0.0, until - time.monotonic()), _SLICE))

    def log_widget(self):
        """An ipywidgets Output that shows the server's lines as they are recorded.

        For output caused by a widget's callback rather than by a cell (a chat client's
        Send button): from now on the server's lines go to this widget, in the order
        they were recorded, and no longer to cells.
        """
        import ipywidgets

        if self._widget is None:
            self._widget = ipywidgets.Output(layout={"border": "1px solid #ccc"})
            lock = threading.Lock()
            label = self.log.label
            widget = self._widget

            def sink(entries):
                with lock:
                    for stream, line in entries:
                        text = f"{label} {line}\n"
                        if stream == "stderr":
                            widget.append_stderr(text)
                        else:
                            widget.append_stdout(text)

            sink(self.log.take()[0])
            self.log.sink = sink
        return self._widget

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server and free its port. Safe to call twice; never hangs.

        An interrupt (the kernel's stop button) during stop() finishes the stop first.
        """
        try:
            self._stop(timeout)
        except KeyboardInterrupt:
            self._stop(min(timeout, 0.2))  # finish at once: close the sockets, report
            raise

    # --- lifecycle -----------------------------------------------------------------------

    def _transition(self, new: State) -> bool:
        """Go to ``new``; False if already there (idempotent), LifecycleError if illegal."""
        with self._state_lock:
            if self._state is new:
                return False
            if new not in _TRANSITIONS[self._state]:
                raise LifecycleError(
                    f"netlab: server {self.name!r} cannot go from {self._state.value} "
                    f"to {new.value}"
                )
            self._state = new
            return True

    def _start(self, timeout: float) -> None:
        thread = threading.Thread(target=self._run, name=f"netlab-{self.name}", daemon=True)
        self._main = thread
        self.add_thread(thread)
        thread.start()
        if not _interruptible_wait(self._started, timeout):
            if not self._finished.is_set():
                self.stop()
                raise ServerError(
                    f"netlab: your server {self.name!r} did not call listen() within "
                    f"{timeout:g} s. Is it stuck before listen() (input(), time.sleep, a loop)?"
                )
        if self._ready.is_set():
            return
        if self._errors:
            raise ServerError(
                f"netlab: your server {self.name!r} crashed before it listened "
                "(its traceback is above)."
            ) from self._errors[0]
        raise ServerError(
            f"netlab: your server {self.name!r} returned before it called listen(). "
            "A TCP server must bind() and listen() before it can accept()."
        )

    def _run(self) -> None:
        block_interrupts()
        try:
            if inspect.iscoroutinefunction(self._target):
                with asyncio.Runner() as runner:
                    runner.run(self._run_async())
            else:
                self._target(self.port, *self._args)
        except ServerStopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self._crashed(exc)
        finally:
            with self._state_lock:
                if self._state in (State.STARTING, State.RUNNING):
                    self._state = State.FINISHED
            self.log.end_thread(threading.get_ident())
            self._finished.set()
            self._started.set()
            self.thread_done(threading.current_thread())

    async def _run_async(self) -> None:
        await self._target(self.port, *self._args)  # its loop is adopted by run_forever

    def _stop(self, timeout: float) -> None:
        if self._state is State.STOPPED:
            return
        self._transition(State.STOPPING)
        deadline = time.monotonic() + timeout
        self.stopping = True
        self.stop_event.set()
        self.wake_all()
        for cond in list(self._conditions):
            if cond.acquire(timeout=0.1):
                try:
                    cond.notify_all()
                finally:
                    cond.release()
        for loop in list(self._loops):
            if not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(_cancel_all_tasks)
                except RuntimeError:
                    pass  # the loop closed meanwhile
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        joined = self._join(min(deadline, time.monotonic() + 0.3))
        sockets = list(self._sockets)
        if not joined:
            for sock in sockets:
                _quietly(sock.shutdown, socket.SHUT_RDWR)  # wakes selectors and C calls
            joined = self._join(min(deadline, time.monotonic() + 0.2))
        if not joined:
            self._wake_listeners(sockets)
            self._interrupt_threads()
            joined = self._join(min(deadline, time.monotonic() + 0.2))
        for sock in sockets:
            _quietly(sock.close)
        if not joined:
            joined = self._join(deadline)
        self.log.end_all()
        if not joined:
            busy = ", ".join(
                f"{t.name} ({w.describe() if w else 'running'})" for t, w in self.waits().items()
            )
            self.log.note(
                "stderr",
                f"netlab: thread(s) {busy} did not stop within {timeout:g} s (busy in code "
                "netlab cannot interrupt). Their sockets are closed, so the port is free.",
            )
        if self._stop_reason:
            self.log.note("stderr", self._stop_reason)
        self.log.closed = True
        self._transition(State.STOPPED)
        self._finished.set()
        self._started.set()
        self.close_wake()
        self._print_log()

    def _print_log(self) -> None:
        if self.silent:
            self.log.take()  # recorded (srv.output()), never printed
        else:
            self.log.show()

    def _join(self, deadline: float) -> bool:
        with interrupts_deferred(), self.cond:
            while self._infos:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or interrupt_pending():
                    return False
                self.cond.wait(min(remaining, _SLICE))
        return True

    def _interrupt_threads(self) -> None:
        """Raise ServerStopped in threads still running Python code (CPython's
        PyThreadState_SetAsyncExc, the C API for exactly this)."""
        set_async_exc = getattr(
            getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None
        )
        if set_async_exc is None:
            return
        for thread in self.threads:
            if thread.ident is not None and thread is not threading.current_thread():
                set_async_exc(ctypes.c_ulong(thread.ident), ctypes.py_object(ServerStopped))

    def _wake_listeners(self, sockets) -> None:
        # On macOS and Windows, shutdown() does not wake a thread blocked in accept():
        # a connection does. On Linux the shutdown already did, and this finds nothing.
        for sock in sockets:
            try:
                if (
                    sock.type != socket.SOCK_STREAM
                    or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1
                ):
                    continue
                host, port = sock.getsockname()[:2]
            except (OSError, AttributeError):
                continue
            try:
                socket.create_connection((connectable(host), port), timeout=0.2).close()
            except OSError:
                pass

    def _raise_if_crashed(self) -> None:
        if self._errors:
            raise ServerError(
                f"netlab: your server {self.name!r} raised an exception (traceback above)."
            ) from self._errors[0]

    def _in_flight(self) -> bool:
        if table_source() != "proc":
            return False
        ports = set()
        for sock in list(self._sockets):
            try:
                if sock.type == socket.SOCK_STREAM and sock.family in _INET:
                    ports.add(sock.getsockname()[1])
            except OSError:
                pass  # closed
        return in_flight(ports - {0})

    def _busy_reason(self, waited: float) -> str:
        frames = sys._current_frames()  # documented in the sys module, for exactly this
        places = []
        for thread, _wait in self.busy_threads():
            frame = frames.get(thread.ident)
            places.append(f"{thread.name} {where(frame)}".rstrip() if frame else thread.name)
        return (
            f"netlab stopped {self.name!r}: after {waited:g} s it was still busy and not "
            f"waiting for a client, a timer or a queue ({'; '.join(places) or 'no thread'}). "
            "A loop without a socket call, or a wait netlab cannot see (a Lock, input())?"
        )

    def _printed_too_much(self) -> None:
        self._request_stop(
            f"netlab stopped {self.name!r}: it printed {_output.RUNAWAY_LINES} lines in "
            "one go without waiting for a client. A loop that never ends? (After the client "
            "has closed, recv() returns b'' at once, every time: `if not data: break`.)"
        )

    def _request_stop(self, reason: str) -> None:
        """From a server thread: stop soon (the main thread finishes the stop)."""
        with self.cond:
            if self._stop_reason is None:
                self._stop_reason = reason
            self.stopping = True
            self._changed()
        self.stop_event.set()
        self.wake_all()

    # --- called by _patches from the server's threads (see Group) ------------------------

    def adopt_thread(self, thread: threading.Thread) -> None:
        self.add_thread(thread)
        run = thread.run

        def run_and_report():
            block_interrupts()
            try:
                run()
            except ServerStopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                self._crashed(exc)
            finally:
                self.log.end_thread(threading.get_ident())
                self.thread_done(thread)

        thread.run = run_and_report

    def adopt_socket(self, sock: socket.socket) -> None:
        self._sockets.add(sock)

    def pending_input(self) -> bool:
        """Data or a connection waits on one of the server's sockets (see Group)."""
        fds = []
        for sock in list(self._sockets):
            try:
                fd = sock.fileno()
            except (OSError, ValueError):
                continue
            if fd >= 0 and sock.type in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                fds.append((fd, False))
        return bool(fds) and fds_ready(fds)

    def adopt_loop(self, loop) -> None:
        """An asyncio loop runs in a server thread (``asyncio.run`` in the learner's own
        function, or netlab's for ``async def``): ``stop()`` cancels its tasks."""
        self._loops.add(loop)

    def adopt_socketserver(self, server) -> None:
        server._netlab_group = self
        self._socketservers.append(server)

    def waiting_on(self, cond) -> None:
        self._conditions.add(cond)

    def executor(self) -> _patches.GroupExecutor:
        with self.cond:
            if self._executor is None:
                self._executor = _patches.GroupExecutor(f"netlab-{self.name}")
            return self._executor

    def poll_matters(self) -> None:
        with self.cond:
            for info in self._infos.values():
                if info.wait is not None and info.wait.poll_loop:
                    info.wait.poll_loop = False
                info.idle = False
            self._changed()

    def record_output(self, stream: str, text: str) -> None:
        if self._state is State.STOPPING and not self.log.closed:
            return  # what a server says while stop() wakes it is noise (e.g. recv -> b'')
        self.activity()
        self.log.record(stream, text)
        sink = getattr(self.log, "sink", None)
        if sink is not None:
            sink(self.log.take()[0])

    def mark(self, sock, name: str, data) -> None:
        self.activity()

    def eof_spin(self, sock, at_eof: bool) -> None:
        # Only a network peer's b'' counts: not a socketpair's (asyncio's wake-up pipe
        # reads b'' after netlab closed it) and nothing after stop() began.
        if self.stopping or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        key = id(sock)
        if not at_eof:
            self._eof_counts.pop(key, None)
            return
        count = self._eof_counts.get(key, 0) + 1
        self._eof_counts[key] = count
        if count >= _patches.EOF_SPIN_LIMIT:
            self._request_stop(
                f"netlab stopped {self.name!r}: recv() returned b'' {count} times in a row "
                "on one connection. b'' means the client has closed: no more data will come, "
                "ever. End the loop there: `if not data: break`."
            )
            raise ServerStopped(self._stop_reason)

    def socket_call(self, sock, name: str, args, result) -> None:
        if name == "accept":
            self.activity()
        if not self.trace:
            return
        if name == "accept" and isinstance(result, tuple):
            text = f"accept() -> connection from {format_address(result[1])}"
        elif name in ("recv", "recvfrom") and not isinstance(result, BaseException):
            data = result[0] if name == "recvfrom" else result
            text = f"{name}({args[0] if args else ''}) -> {_preview(data)} ({len(data)} bytes)"
        elif name in ("send", "sendall", "sendto", "write") and args:
            sent = "" if result is None else f" -> {result}"
            text = f"{name}({len(args[0])} bytes: {_preview(args[0])}){sent}"
        else:
            text = f"{name}() -> {result!r}"
        self.log.note("stdout", f"  . {text}")

    def _crashed(self, exc: BaseException) -> None:
        if self.stopping:
            _release_frames(exc)
            return  # woken by stop(): the learner's call failed because we closed its socket
        text = format_traceback(exc)
        _release_frames(exc)
        with self.cond:
            self._errors.append(exc)
        thread = threading.current_thread().name
        self.log.note("stderr", f"exception in server thread {thread}:\n{text}")

    def before_bind(self, sock: socket.socket, address) -> None:
        if sock.type == socket.SOCK_STREAM and not IS_WINDOWS:
            _quietly(sock.setsockopt, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if isinstance(address, tuple) and is_wildcard(address[0]):
            self.log.note(
                "stdout",
                f"(netlab) bind(({address[0]!r}, ...)) listens on every network interface: "
                "other computers on your network can connect too. Use '127.0.0.1' to stay local.",
            )

    def bound(self, sock: socket.socket) -> None:
        if sock.type == socket.SOCK_DGRAM and not self._ready.is_set():
            self._set_ready(sock)

    def listening(self, sock: socket.socket) -> None:
        if not self._ready.is_set():
            self._set_ready(sock)

    def _set_ready(self, sock: socket.socket) -> None:
        self.bound_address = sock.getsockname()
        host, port = self.bound_address[:2]
        self.host = connectable(host)
        self.port = port
        with self._state_lock:
            if self._state is State.STARTING:
                self._state = State.RUNNING
        self._ready.set()
        self._started.set()


def _prime_module_cache() -> None:
    """Let ``inspect`` map every imported module's file now, before the server runs.

    IPython formats a traceback (an Interrupt's too) with ``inspect.getmodule``, which
    the first time maps the file of every module in ``sys.modules``: thousands of
    ``lstat`` calls, each of which gives up the GIL. With a learner's server spinning in
    Python meanwhile, each one then waits for the GIL (up to 5 ms, the switch interval),
    and an interrupted cell took more than 5 s to end (tests/test_promise.py, cruncher).
    Done here, with no new server running yet, later calls map only newer modules."""
    with contextlib.suppress(Exception):
        inspect.getmodule(sys._getframe())


def _release_frames(exc: BaseException) -> None:
    """Let go of what the crashed code's frames held, as Python does once it has printed
    an uncaught exception: netlab keeps the exception (``errors``), and its traceback
    would keep every local variable alive, sockets included. A socket that only the
    crashed function held is then closed at once (its client sees the end, instead of
    waiting for its own timeout); one that a live thread still uses stays open. The names
    of the innermost frame's variables are kept (``netlab_local_names``): a check's
    "did you mean" for a NameError looks at them."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        with contextlib.suppress(AttributeError, TypeError):
            code = tb.tb_frame.f_code  # (not f_locals: that would keep a copy of the values)
            exc.netlab_local_names = code.co_varnames + code.co_cellvars + code.co_freevars
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)  # (frames still running are skipped)
        exc = exc.__cause__ or exc.__context__


def _settle_before_main_prints() -> None:
    """Before the main thread prints a line: let every server finish what it can do now
    (no waiting for its deadlines, and never stopping it), then show its lines. So a
    server's reaction to what the cell did comes before the cell's next line, on every
    run: the server cannot have done more, and the cell cannot have done anything else
    meanwhile. A server still busy after ``PRINT_SETTLE`` seconds is left to the end of
    the cell."""
    for server in registered_servers():
        if server.silent or server.state == "stopped" or server.print_settle_failed:
            continue
        if server.wait_quiet(PRINT_SETTLE, deadlines=False):
            server.log.show()
        else:
            # Busy for longer: the rest of this cell's prints do not wait for it (so its
            # lines come at the end of the cell, not before whichever print it passed).
            server.print_settle_failed = True


_output.before_main_write = _settle_before_main_prints


# The main thread waits in slices: a lock wait is woken by a signal only if the signal
# reaches the main thread, and the kernel's Interrupt (SIGINT) may reach another thread.
_SLICE = 0.1


def _interruptible_wait(event: threading.Event, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not event.wait(min(_SLICE, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            return False
    return True


def _quietly(call, *args) -> None:
    try:
        call(*args)
    except OSError:
        pass


def _cancel_all_tasks() -> None:
    for task in asyncio.all_tasks():
        task.cancel()


def serve(
    target,
    *args,
    port: int | None = 5000,
    name: str | None = None,
    trace: bool = False,
    timeout: float = READY_TIMEOUT,
    announce: bool = True,
) -> Server:
    """Run ``target(port, *args)`` in a background thread; return once it listens.

    >>> srv = netlab.serve(server)     # def server(port): ... s.listen() ... s.accept()
    >>> srv.port, srv.stop()

    ``target`` is a function (or ``async def``: it runs in its own event loop) that
    creates, binds and listens on a socket, like the seed's server.py, using the port it
    is given: 5000 when free, else a free port (a line says why). Re-running
    ``serve`` with the same function replaces the old server (a line says so when it
    was still running). ``trace=True`` also
    records every socket call the server makes. ``announce=False`` prints nothing
    (a check's own servers); the output is still recorded (``srv.output()``).
    """
    _patches.install()  # done at import already; here too for a process that forked since
    _output.route_output()  # the kernel, pytest or %%capture may have a new stream in place
    _prime_module_cache()
    name = name or getattr(target, "__name__", "server")
    with _registry_lock:
        previous = _registry.pop(name, None)
    if previous is not None:
        was_running = previous.running
        previous.stop()
        if was_running and announce:  # say so: the re-run's output shows only the new start
            print(
                f"netlab: stopped your earlier {name!r} on "
                f"{format_address(previous.address)} first (a re-run replaces it)"
            )
    if port == 5000:
        port = preferred_port()  # 5000, unless this machine is shared (see _ports.py)
    chosen, why = choose_port(port)
    because = ""
    if why:
        holder = next((s for s in running_servers() if s.port == port), None)
        if holder is not None:
            who = f"your server {holder.name!r}; stop it with its .stop()"
        else:
            who = "another program"
            if port == 5000:
                who += " (most often the kernel of another of your notebooks: shut it down"
                who += "; on macOS, the AirPlay Receiver)" if sys.platform == "darwin" else ")"
        because = f" ({why} by {who})"
    elif preferred_reason() and chosen == preferred_port():
        because = f" ({preferred_reason()})"
    server = _start_server(target, args, name, chosen, trace, timeout, not announce)
    if server is None:  # another program took the port between our probe and the bind
        chosen = free_port()
        because = f" (port {port} was taken by another program meanwhile)"
        server = _start_server(target, args, name, chosen, trace, timeout, not announce)
    try:
        server.show(kernel=False)  # settled at start: before any client knows the port
    except BaseException:
        server.stop()
        raise
    if announce:
        where_ = format_address(server.bound_address or server.address)
        if server.bound_address and is_wildcard(server.bound_address[0]):
            where_ += f" (every interface; connect to {format_address(server.address)})"
        print(f"netlab: {name!r} is listening on {where_}{because}")
    return server


def _start_server(target, args, name, port, trace, timeout, silent) -> Server | None:
    """Start and register a Server; None if its bind() lost a race for the port."""
    server = Server(target, args, name, port, trace)
    server.silent = silent
    with _registry_lock:
        _registry[name] = server
    try:
        server._start(timeout)
    except ServerError as exc:
        cause = exc.__cause__
        lost_race = isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE and port != 0
        if lost_race:
            server.silent = True  # serve() tries again on a free port and says why
        server.stop()
        if lost_race:
            return None
        raise
    except BaseException:  # KeyboardInterrupt while waiting for listen(): leave nothing
        server.stop()
        raise
    return server


def running_servers() -> list[Server]:
    """The servers netlab runs now, oldest first."""
    with _registry_lock:
        return [s for s in _registry.values() if s.running]


def registered_servers() -> list[Server]:
    with _registry_lock:
        return list(_registry.values())


def stop_all() -> None:
    """Stop every server netlab started (also run at interpreter or kernel exit)."""
    for server in registered_servers():
        server.stop()


def refused_hint(port: int | None = None) -> str:
    """The note added to ConnectionRefusedError: which of netlab's servers was meant."""
    servers = registered_servers()
    ended = [s for s in servers if port is not None and s.port == port and not s.running]
    if ended:
        server = ended[-1]
        if server.state == "stopped":
            how = "was stopped"
        elif server.errors:
            how = "crashed (its traceback is above)"
        else:
            how = "has finished (its function returned)"
        if len(ended) == 1:
            return (
                f"netlab: nothing listens on port {port} any more: your server "
                f"{server.name!r} {how}. Run the cell that starts it again, then connect."
            )
        # several of the notebook's servers used the port: the last need not be the one meant
        names = ", ".join(repr(s.name) for s in ended)
        return (
            f"netlab: nothing listens on port {port} any more: your servers {names} used it, "
            f"and the last, {server.name!r}, {how}. Run the cell that starts the one you "
            "meant again, then connect."
        )
    running = [s for s in servers if s.running]
    if running:
        listed = ", ".join(f"{s.name!r} on {format_address(s.address)}" for s in running)
        return (
            "netlab: nothing listens at that address. Servers running in this kernel "
            f"(none of them at that address): {listed}."
        )
    return (
        "netlab: nothing listens at that address. Start the server first (run the cell "
        "that calls netlab.serve(...)), and connect to the port it reports (srv.port)."
    )


atexit.register(stop_all)
