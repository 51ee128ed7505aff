"""Run a learner's server function in a background thread, and show what it did.

Rules of this file:
- ``serve()`` returns only once the server listens (TCP) or is bound (UDP). It learns
  that from the learner's own ``listen()``/``bind()`` call (see ``_hooks.py``): no
  sleeps, and no test connection that would use up the learner's ``accept()``.
- Server threads never print. What they write and what they raise is recorded here and
  shown by the main thread (``show()``), labelled with the server's name, in the order
  it happened. In Jupyter ``_display.py`` calls ``show()`` at the end of every cell,
  after waiting until the server is quiet, so the output lands in a stable place.
- ``stop()`` is idempotent and bounded in time: it wakes the server's blocked calls by
  shutting its sockets down, closes them (which frees the port even if a thread is
  stuck in code netlab cannot interrupt), and waits at most ``timeout`` seconds.

Why SO_REUSEADDR: a server that closes a connection first leaves it in TIME_WAIT for
up to a minute, and on Linux and macOS a new server cannot bind that port meanwhile
unless SO_REUSEADDR is set. Re-running a notebook cell must work, so netlab sets it on
the TCP sockets its servers bind (as socketserver and asyncio do). It does not set it
on Windows, where the option means something else (notebook 02 shows both).
"""

from __future__ import annotations

import asyncio
import atexit
import errno
import inspect
import os
import socket
import sys
import threading
import time
import traceback
import weakref

from . import _hooks
from ._ports import choose_port, free_port
from ._states import in_flight

READY_TIMEOUT = 5.0
_INET = (socket.AF_INET, socket.AF_INET6)
QUIET_TIMEOUT = 2.0
STOP_TIMEOUT = 2.0
_TRACE_PREVIEW = 40

_registry: dict[str, Server] = {}
_registry_lock = threading.Lock()


class ServerError(RuntimeError):
    """A server run by netlab failed; the message says what to do, the cause has the traceback."""


def _format_address(address) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0] or "0.0.0.0"
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)


def _preview(data: bytes) -> str:
    shown = bytes(data[:_TRACE_PREVIEW])
    more = "..." if len(data) > _TRACE_PREVIEW else ""
    return f"{shown!r}{more}"


class Server:
    """A handle on a server that netlab runs in a background thread.

    >>> with netlab.serve(server) as srv:          # server(port) is your function
    ...     client(srv.port)

    Attributes: ``name``, ``host``, ``port``, ``address``. Methods: ``show()``,
    ``wait()``, ``stop()``, ``output()``.
    """

    def __init__(self, target, args, name: str, port: int, trace: bool):
        self.name = name
        self.host = "127.0.0.1"
        self.port = port
        self.trace = trace
        self._target = target
        self._args = args
        self._cond = threading.Condition(threading.RLock())
        self._threads: dict[threading.Thread, _hooks.Waiting | None] = {}
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._socketservers: weakref.WeakSet = weakref.WeakSet()
        self._log: list[tuple[str, str]] = []  # (stream, line) in the order they happened
        self._partial: dict[tuple[threading.Thread, str], str] = {}
        self._shown = 0
        self._errors: list[BaseException] = []
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._stopping = False
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: threading.Thread | None = None

    # --- what the learner sees -------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        return not self._finished.is_set() and not self._stopped

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._stopped else "finished")
        return f"<netlab server {self.name!r} on {_format_address(self.address)}, {state}>"

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def output(self) -> str:
        """Everything the server wrote so far, as one string (whether shown or not)."""
        with self._cond:
            return "".join(f"{line}\n" for _, line in self._log)

    def show(self, wait: float = QUIET_TIMEOUT) -> None:
        """Print what the server wrote since the last ``show()``, labelled ``[name]``.

        First waits (at most ``wait`` seconds) until the server is quiet, so that what it
        writes in reaction to a cell is shown by that same cell.
        """
        quiet = self.wait_quiet(wait) if wait else True
        with self._cond:
            entries = self._log[self._shown :]
            self._shown = len(self._log)
        label = f"[{self.name}]"
        for stream, line in entries:
            target = sys.stderr if stream == "stderr" else sys.stdout
            print(f"{label} {line}" if line else label, file=target)
        if not quiet:
            print(f"{label} (netlab: still busy after {wait:g} s; more output may follow)")

    def wait(self, timeout: float = 5.0) -> None:
        """Wait until the server function returns, then show its output.

        Raises ServerError if it crashed, TimeoutError if it is still running.
        """
        if not self._finished.wait(timeout):
            raise TimeoutError(
                f"netlab: server {self.name!r} is still running after {timeout:g} s "
                "(waiting in accept() or recv() for a client?). Use srv.stop() to stop it."
            )
        self.show(wait=0)
        self._raise_if_crashed()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server and free its port. Safe to call twice; never hangs."""
        with self._cond:
            if self._stopped:
                return
            self._stopping = True
        deadline = time.monotonic() + timeout
        for server in list(self._socketservers):
            server._BaseServer__shutdown_request = True  # what shutdown() sets, without its wait
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(_cancel_all_tasks)
            except RuntimeError:
                pass  # the loop closed meanwhile
            self._join(min(deadline, time.monotonic() + timeout / 2))
        sockets = list(self._sockets)
        for sock in sockets:
            _quietly(sock.shutdown, socket.SHUT_RDWR)
        if not self._join(min(deadline, time.monotonic() + 0.2)):
            self._wake_listeners(sockets)
        self._join(min(deadline, time.monotonic() + 0.2))
        for sock in sockets:
            _quietly(sock.close)
        stuck = not self._join(deadline)
        with self._cond:
            self._stopped = True
            for (_thread, stream), text in list(self._partial.items()):
                self._log.append((stream, text))
            self._partial.clear()
            if stuck:
                names = ", ".join(t.name for t in self._threads)
                self._log.append(
                    (
                        "stderr",
                        f"netlab: thread(s) {names} did not stop within {timeout:g} s (busy in "
                        "code netlab cannot interrupt, such as time.sleep or a loop without "
                        "socket calls). Their sockets are closed, so the port is free.",
                    )
                )
        self.show(wait=0)

    # --- running -----------------------------------------------------------------------

    def _start(self, timeout: float) -> None:
        thread = threading.Thread(target=self._run, name=f"netlab-{self.name}", daemon=True)
        thread._netlab_server = self
        self._main = thread
        with self._cond:
            self._threads[thread] = None
        thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._finished.is_set():
                if self._errors:
                    raise ServerError(
                        f"netlab: your server {self.name!r} crashed before it listened "
                        "(its traceback is above)."
                    ) from self._errors[0]
                raise ServerError(
                    f"netlab: your server {self.name!r} returned before it called listen(). "
                    "A TCP server must bind() and listen() before it can accept()."
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(
                    f"netlab: your server {self.name!r} did not call listen() within "
                    f"{timeout:g} s. Is it stuck before listen() (input(), time.sleep, a loop)?"
                )

    def _run(self) -> None:
        try:
            if inspect.iscoroutinefunction(self._target):
                asyncio.run(self._run_async())
            else:
                self._target(self.port, *self._args)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            self._crashed(exc)
        finally:
            self._thread_done(threading.current_thread())
            self._finished.set()

    async def _run_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._target(self.port, *self._args)

    def _join(self, deadline: float) -> bool:
        with self._cond:
            while self._threads:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

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
            host = "127.0.0.1" if host in ("", "0.0.0.0") else ("::1" if host == "::" else host)
            try:
                socket.create_connection((host, port), timeout=0.2).close()
            except OSError:
                pass

    def _raise_if_crashed(self) -> None:
        if self._errors:
            raise ServerError(
                f"netlab: your server {self.name!r} raised an exception (traceback above)."
            ) from self._errors[0]

    def is_quiet(self) -> bool:
        """True when every thread of the server waits on something that is not ready,
        and the kernel has nothing on its way to the server's sockets (see in_flight)."""
        with self._cond:
            if not all(w is not None and not w.ready() for w in self._threads.values()):
                return False
            if not self._threads:
                return True
            ports = set()
            for sock in list(self._sockets):
                try:
                    if sock.type == socket.SOCK_STREAM and sock.family in _INET:
                        ports.add(sock.getsockname()[1])
                except OSError:
                    pass  # closed
            return not in_flight(ports - {0})

    @property
    def errors(self) -> list[BaseException]:
        """The exceptions the server's threads raised (not those caused by stop())."""
        with self._cond:
            return list(self._errors)

    def wait_quiet(self, timeout: float = QUIET_TIMEOUT) -> bool:
        """Wait until the server is quiet (see is_quiet); False if still busy at the bound."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.is_quiet():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # A thread that enters or leaves a blocking call notifies us; the short
                # bound only covers a socket becoming ready while its thread is between
                # two checks, and it is re-checked, not trusted.
                self._cond.wait(min(remaining, 0.05))
        return True

    # --- called by _hooks from server threads -------------------------------------------

    def _adopt_thread(self, thread: threading.Thread) -> None:
        with self._cond:
            self._threads[thread] = None
        run = thread.run

        def run_and_report():
            try:
                run()
            except BaseException as exc:  # noqa: BLE001 - reported to the main thread
                self._crashed(exc)
            finally:
                self._thread_done(thread)

        thread.run = run_and_report

    def _adopt_socket(self, sock: socket.socket) -> None:
        self._sockets.add(sock)

    def _adopt_socketserver(self, server) -> None:
        self._socketservers.add(server)

    def _thread_done(self, thread: threading.Thread) -> None:
        with self._cond:
            for (t, stream), text in list(self._partial.items()):
                if t is thread:
                    self._log.append((stream, text))
                    del self._partial[(t, stream)]
            self._threads.pop(thread, None)
            self._cond.notify_all()

    def _enter_wait(self, waiting: _hooks.Waiting) -> None:
        with self._cond:
            self._threads[threading.current_thread()] = waiting
            self._cond.notify_all()

    def _leave_wait(self) -> None:
        with self._cond:
            self._threads[threading.current_thread()] = None
            self._cond.notify_all()

    def _record_output(self, stream: str, text: str) -> None:
        if self._stopping:
            return  # what a server says while stop() wakes it is noise (e.g. recvfrom -> b'')
        key = (threading.current_thread(), stream)
        with self._cond:
            lines = (self._partial.pop(key, "") + text).split("\n")
            if lines[-1]:
                self._partial[key] = lines[-1]
            self._log.extend((stream, line) for line in lines[:-1])

    def _note(self, text: str) -> None:
        with self._cond:
            self._log.append(("stdout", f"(netlab) {text}"))

    def _crashed(self, exc: BaseException) -> None:
        if self._stopping:
            return  # woken by stop(): the learner's call failed because we closed its socket
        self._errors.append(exc)
        text = format_traceback(exc)
        thread = threading.current_thread().name
        with self._cond:
            self._log.append(("stderr", f"exception in server thread {thread}:"))
            self._log.extend(("stderr", line) for line in text.split("\n"))

    def _before_bind(self, sock: socket.socket, address) -> None:
        if sock.type == socket.SOCK_STREAM and not _hooks.IS_WINDOWS:
            _quietly(sock.setsockopt, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if isinstance(address, tuple) and address[0] in ("", "0.0.0.0", "::"):
            self._note(
                f"bind(({address[0]!r}, ...)) listens on every network interface: other "
                "computers on your network can connect too. Use '127.0.0.1' to stay local."
            )

    def _bound(self, sock: socket.socket) -> None:
        if sock.type == socket.SOCK_DGRAM and not self._ready.is_set():
            self._set_ready(sock)

    def _listening(self, sock: socket.socket) -> None:
        if not self._ready.is_set():
            self._set_ready(sock)

    def _set_ready(self, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        self.host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.port = port
        self._ready.set()

    def _socket_call(self, sock, name: str, args, result) -> None:
        if not self.trace:
            return
        if name == "accept" and isinstance(result, tuple):
            text = f"accept() -> connection from {_format_address(result[1])}"
        elif name in ("recv", "recvfrom") and not isinstance(result, BaseException):
            data = result[0] if name == "recvfrom" else result
            text = f"{name}({args[0] if args else ''}) -> {_preview(data)} ({len(data)} bytes)"
        elif name in ("send", "sendall", "sendto") and args:
            sent = "" if name == "sendall" else f" -> {result}"
            text = f"{name}({len(args[0])} bytes: {_preview(args[0])}){sent}"
        elif isinstance(result, BaseException):
            text = f"{name}() raised {type(result).__name__}: {result}"
        else:
            text = f"{name}() -> {result!r}"
        with self._cond:
            self._log.append(("stdout", f"  . {text}"))


def _frame_file(filename: str) -> str:
    """A frame's file as a learner should read it: "Cell In[3]" or "socket.py"."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        number = shell.compile._filename_map.get(filename) if shell else None
        if number is not None:
            return f"Cell In[{number}]"
    except (ImportError, AttributeError):
        pass
    return os.path.basename(filename)


def format_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without netlab's own frames and without machine paths."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if os.path.dirname(os.path.abspath(f.filename)) != _HERE
    ]
    lines = ["Traceback (most recent call last):"]
    for frame in frames:
        lines.append(
            f'  File "{_frame_file(frame.filename)}", line {frame.lineno}, in {frame.name}'
        )
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    lines.extend(traceback.format_exception_only(exc))
    return "\n".join(line.rstrip("\n") for line in lines)


_HERE = os.path.dirname(os.path.abspath(__file__))


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
) -> Server:
    """Run ``target(port, *args)`` in a background thread; return once it listens.

    >>> srv = netlab.serve(server)     # def server(port): ... s.listen() ... s.accept()
    >>> srv.port, srv.stop()

    ``target`` is a function (or ``async def``: it runs in its own event loop) that
    creates, binds and listens on a socket, like the seed's server.py, using the port it
    is given: 5000 when free, else a free port (a line says why). Re-running
    ``serve`` with the same function replaces the old server. ``trace=True`` also
    records every socket call the server makes.
    """
    from . import _display

    _hooks.install()
    _hooks.route_output()
    _display.install()
    name = name or getattr(target, "__name__", "server")
    with _registry_lock:
        previous = _registry.pop(name, None)
    if previous is not None and previous.running:
        previous.stop()
    chosen, why = choose_port(port)
    because = ""
    if why:
        holder = next((s for s in running_servers() if s.port == port), None)
        if holder is not None:
            who = f"your server {holder.name!r}; srv.stop() frees it"
        else:
            who = "another program"
            if port == 5000:
                who += "; on macOS the AirPlay Receiver often holds 5000"
        because = f" ({why} by {who})"
    server = _start_server(target, args, name, chosen, trace, timeout)
    if server is None:  # another program took the port between our probe and the bind
        chosen = free_port()
        because = f" (port {port} was taken by another program meanwhile)"
        server = _start_server(target, args, name, chosen, trace, timeout)
    server.show()
    # Always one line, so that a notebook's output has the same shape whether or not
    # port 5000 was free (nbval's sanitizer removes the parenthesis, see tests/).
    print(f"netlab: {name!r} is listening on {_format_address(server.address)}{because}")
    return server


def _start_server(target, args, name, port, trace, timeout) -> Server | None:
    """Start and register a Server; None if its bind() lost a race for the port."""
    server = Server(target, args, name, port, trace)
    with _registry_lock:
        _registry[name] = server
    try:
        server._start(timeout)
    except ServerError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE and port != 0:
            return None
        server.show(wait=0)
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


def refused_hint(address) -> str:
    """The sentence added to ConnectionRefusedError: who should have been listening."""
    where = _format_address(address)
    port = address[1] if isinstance(address, tuple) and len(address) >= 2 else None
    for server in reversed(registered_servers()):
        if server.port == port and not server.running:
            how = "was stopped" if server._stopped else "has finished (its function returned)"
            return (
                f"netlab: nothing listens on {where} any more: your server {server.name!r} "
                f"{how}. Run the cell that starts it again, then connect."
            )
    return (
        f"netlab: nothing listens on {where}. Start the server first (run the cell that "
        "calls netlab.serve(...)), and connect to the port it reports (srv.port)."
    )


atexit.register(stop_all)
