"""Knowing what a server thread is doing, without changing what it does.

Rules of this file:
- It patches, once and for the whole process, a few methods of ``socket.socket``,
  ``threading.Thread.start``, the selector classes and ``select.select``, and it wraps
  ``sys.stdout`` / ``sys.stderr``. Every patch first asks "does the current thread belong
  to a netlab server?" and, if not, calls the original at once. A program that never
  calls ``netlab.serve`` behaves exactly as without netlab.
- It never prints. It only tells the owning server (see ``_server.py``) what happened.

Theory of operation. A thread belongs to a server when netlab started it for that
server, or when such a thread started it (``Thread.start`` passes the owner on), so
thread-per-client servers, socketserver and asyncio's executor threads are covered.
For those threads:

* output written to ``sys.stdout`` / ``sys.stderr`` is recorded, not written: ipykernel
  routes output from threads to different cells depending on its version, and nbval
  drops output that arrives outside the running cell. The main thread shows it later.
* ``listen()`` (TCP) and ``bind()`` (UDP) signal that the server is ready, so
  ``serve()`` returns at the right moment without sleeping and without making a
  connection that the learner's ``accept()`` would receive.
* every socket created is remembered, so ``stop()`` can wake and close it.
* a blocking call (accept, recv, send, select, ...) marks the thread as *waiting on*
  that socket or selector. A server whose threads are all waiting on something that
  is not ready is *quiet*: it cannot print anything more until a client acts. That is
  how the main thread knows when it may show the server's output of a cell, so that the
  output lands in the same cell on every run.
"""

from __future__ import annotations

import os
import select
import selectors
import socket
import sys
import threading

_installed = False
_install_lock = threading.Lock()


def owner(thread: threading.Thread | None = None):
    """The netlab server that ``thread`` (default: the current one) works for, or None."""
    return getattr(thread or threading.current_thread(), "_netlab_server", None)


# --- readiness of what a thread waits on -------------------------------------------


def _fd_ready(fd: int, want_write: bool) -> bool:
    """True when ``fd`` is ready now (a blocked call on it is about to return)."""
    if fd < 0:
        return True  # closed under the thread's feet: the call is about to fail
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLOUT if want_write else select.POLLIN)
            return bool(poller.poll(0))
        r, w, _ = select.select([] if want_write else [fd], [fd] if want_write else [], [], 0)
        return bool(r or w)
    except (OSError, ValueError):
        return True


class Waiting:
    """What a server thread is blocked on: a socket (read or write) or a set of fds."""

    __slots__ = ("fds",)

    def __init__(self, fds):
        self.fds = fds  # list of (fd, want_write)

    def ready(self) -> bool:
        return any(_fd_ready(fd, w) for fd, w in self.fds)


def _selector_fds(selector) -> list:
    fds = []
    try:
        for key in list(selector.get_map().values()):
            if key.events & selectors.EVENT_READ:
                fds.append((key.fd, False))
            if key.events & selectors.EVENT_WRITE:
                fds.append((key.fd, True))
    except (RuntimeError, ValueError, OSError, AttributeError):
        return [(-1, False)]  # map changed while we looked: treat as busy
    return fds


def _select_fds(rlist, wlist) -> list:
    def fd_of(obj):
        return obj if isinstance(obj, int) else obj.fileno()

    try:
        return [(fd_of(o), False) for o in rlist] + [(fd_of(o), True) for o in wlist]
    except (OSError, ValueError, AttributeError):
        return [(-1, False)]


# --- the patches -----------------------------------------------------------------------


def _blocking(original, want_write: bool):
    def wrapper(self, *args, **kwargs):
        __tracebackhide__ = True  # IPython and pytest hide this frame from learners
        server = owner()
        if server is None:
            return original(self, *args, **kwargs)
        server._enter_wait(Waiting([(self.fileno(), want_write)]))
        try:
            result = original(self, *args, **kwargs)
        finally:
            server._leave_wait()
        return result

    wrapper.__name__ = original.__name__
    wrapper.__doc__ = original.__doc__
    wrapper.__wrapped__ = original
    return wrapper


def _traced(name, original):
    """After a call in a server thread, let the server record it (trace mode)."""

    def wrapper(self, *args, **kwargs):
        __tracebackhide__ = True
        server = owner()
        if server is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            server._socket_call(self, name, args, exc)
            raise
        server._socket_call(self, name, args, result)
        return result

    wrapper.__name__ = original.__name__
    wrapper.__wrapped__ = original
    return wrapper


def _patch_socket_class():
    cls = socket.socket
    original_init = cls.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        server = owner()
        if server is not None:
            server._adopt_socket(self)

    cls.__init__ = __init__

    original_listen = cls.listen

    def listen(self, *args):
        __tracebackhide__ = True
        original_listen(self, *args)
        server = owner()
        if server is not None:
            server._listening(self)

    cls.listen = listen

    original_bind = cls.bind

    def bind(self, address):
        __tracebackhide__ = True
        server = owner()
        if server is not None:
            server._before_bind(self, address)
        original_bind(self, address)
        if server is not None:
            server._bound(self)

    cls.bind = bind

    original_connect = cls.connect

    def connect(self, address):
        __tracebackhide__ = True
        try:
            return original_connect(self, address)
        except ConnectionRefusedError as exc:
            from ._server import refused_hint

            exc.add_note(refused_hint(address))
            raise

    cls.connect = connect

    for name in ("send", "sendall", "sendto"):
        original = getattr(cls, name)

        def make(original=original):
            def sender(self, data, *args):
                __tracebackhide__ = True
                try:
                    return original(self, data, *args)
                except TypeError as exc:
                    if isinstance(data, str):
                        exc.add_note(
                            "netlab: sockets carry bytes, not str. "
                            f"Send {data[:20]!r}.encode() (or a b'...' literal) instead."
                        )
                    raise

            sender.__name__ = original.__name__
            sender.__wrapped__ = original
            return sender

        setattr(cls, name, make())

    for name, want_write in (
        ("accept", False),
        ("recv", False),
        ("recv_into", False),
        ("recvfrom", False),
        ("recvfrom_into", False),
        ("send", True),
        ("sendall", True),
        ("sendto", True),
    ):
        original = getattr(cls, name)
        traced = _traced(name, original)
        setattr(cls, name, _blocking(traced, want_write))


def _patch_selectors():
    # Every class of the module that defines select() itself: PollSelector, EpollSelector
    # and DevpollSelector inherit theirs from the private _PollLikeSelector.
    classes = [
        cls
        for cls in vars(selectors).values()
        if isinstance(cls, type)
        and issubclass(cls, selectors.BaseSelector)
        and "select" in cls.__dict__
        and not getattr(cls.__dict__["select"], "__isabstractmethod__", False)
    ]
    for cls in classes:
        original = cls.__dict__["select"]

        def make(original=original):
            def select_(self, timeout=None):
                server = owner()
                if server is None:
                    return original(self, timeout)
                server._enter_wait(Waiting(_selector_fds(self)))
                try:
                    return original(self, timeout)
                finally:
                    server._leave_wait()

            select_.__wrapped__ = original
            return select_

        cls.select = make()

    original_select = select.select

    def select_select(rlist, wlist, xlist, timeout=None):
        server = owner()
        if server is None:
            return original_select(rlist, wlist, xlist, timeout)
        server._enter_wait(Waiting(_select_fds(rlist, wlist)))
        try:
            return original_select(rlist, wlist, xlist, timeout)
        finally:
            server._leave_wait()

    select_select.__wrapped__ = original_select
    select.select = select_select


def _patch_threads():
    original_start = threading.Thread.start

    def start(self):
        server = owner()
        if server is not None and owner(self) is None:
            self._netlab_server = server
            server._adopt_thread(self)
        return original_start(self)

    threading.Thread.start = start


def _patch_socketserver():
    import socketserver

    original_init = socketserver.BaseServer.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        server = owner()
        if server is not None:
            server._adopt_socketserver(self)

    socketserver.BaseServer.__init__ = __init__


class RoutedStream:
    """Stands in for sys.stdout / sys.stderr: server threads' writes are recorded.

    Every other thread writes straight through to the stream it wraps, and every
    attribute the kernel or a library looks up is the wrapped stream's.
    """

    def __init__(self, stream, name: str):
        self._netlab_wrapped = stream
        self._netlab_name = name

    def write(self, text):
        server = owner()
        if server is None:
            return self._netlab_wrapped.write(text)
        server._record_output(self._netlab_name, text)
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


def route_output():
    """Make sure sys.stdout and sys.stderr record server threads' output.

    Called by every ``serve()``: the kernel, pytest or ``%%capture`` may have put a
    new stream in place since the last call; the router wraps whatever is there now.
    """
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RoutedStream):
            setattr(sys, name, RoutedStream(stream, name))


def install():
    """Apply the patches once per process (idempotent, thread-safe)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _patch_socket_class()
        _patch_selectors()
        _patch_threads()
        _patch_socketserver()
        _installed = True


IS_WINDOWS = os.name == "nt"
