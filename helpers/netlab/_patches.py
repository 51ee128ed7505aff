"""How netlab learns what a server's threads do, without changing what they do.

Rules of this file:
- It never prints, and it changes nothing for threads that no netlab server owns.
  Sockets are not patched for everyone: a socket that a server thread creates (or
  accepts) becomes a ``ServerSocket`` (``ServerSSLSocket`` for TLS), a subclass whose
  blocking calls report their waits. A client's socket stays a plain ``socket.socket``
  and runs at plain-socket speed. The few patches that every thread passes through
  (``socket.__init__``, ``Thread.start``, ``Condition.wait``/``notify``,
  ``time.sleep``, selector ``select``) check "is this a server thread?" first.
- A blocking call in a server thread is split in two, as trio does: wait for readiness
  (marked as waiting, with the socket's deadline; see ``_waits.py``), then the real
  call without blocking (``MSG_DONTWAIT``), retried if another thread was faster. The
  exceptions and return values are the socket module's own.
- Waits that are not socket calls are known too: ``Condition.wait`` (and so Event,
  Queue, Semaphore, Barrier) with its waker, ``Thread.join``, ``time.sleep``, ``select``,
  selectors, TLS reads/writes/handshakes, and executor threads, for which an asyncio
  loop of a server gets netlab's own small executor (``GroupExecutor``).

Not known (a thread in one of these counts as busy): a plain ``Lock.acquire`` that
blocks, ``input()``, ``subprocess`` waits, a ``ThreadPoolExecutor`` the server's own
code makes, and sockets a server thread uses but did not create.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import select
import selectors
import socket
import socketserver
import sys
import threading
import time
import weakref

from ._waits import ServerStopped, Wait, deadline_after, fds_ready, owner

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)
_WAITALL = getattr(socket, "MSG_WAITALL", 0)
_installed = False
_install_lock = threading.Lock()
_HAS_POLL = hasattr(select, "poll")
_accept_locks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
EOF_SPIN_LIMIT = 100  # recv() returning b'' this often in a row on one socket: a loop


def _timed_out(what: str = "") -> TimeoutError:
    return TimeoutError(f"The {what} operation timed out" if what else "timed out")


class ServerSocket(socket.socket):
    """The socket class of sockets that a server thread created or accepted."""

    __slots__ = ()

    def _tracked(self, want_write: bool, call, *args):
        group = owner()
        timeout = self.gettimeout()
        if group is None or timeout == 0:
            return call(*args)
        fd = self.fileno()
        if fd < 0:
            return call(*args)  # closed: the socket module raises its own error
        deadline = None
        ready = fds_ready(((fd, want_write),))  # ready now: no wait to report
        while True:
            if ready:
                try:
                    return call(*args)
                except (BlockingIOError, InterruptedError):
                    pass  # another thread took it first: wait again
            if deadline is None and timeout is not None:
                deadline = deadline_after(timeout)
            if not group.wait_fd(fd, want_write, deadline):
                raise _timed_out()
            ready = True

    # --- receiving ----------------------------------------------------------------------

    def accept(self):
        group = owner()
        if group is None or self.gettimeout() is not None or not _HAS_POLL:
            result = self._tracked(False, super().accept)
        else:
            # accept() has no MSG_DONTWAIT: on a blocking socket, several threads woken
            # by one connection would all call it, and the losers would block in C,
            # looking busy. Under the socket's own lock, "ready" means accept() returns.
            lock = _accept_locks.setdefault(self, threading.Lock())

            def accept_if_ready():
                with lock:
                    if not fds_ready(((self.fileno(), False),)):
                        raise BlockingIOError  # another thread took it: wait again
                    return super(ServerSocket, self).accept()

            result = self._tracked(False, accept_if_ready)
        if group is not None:
            group.socket_call(self, "accept", (), result)
        return result

    def recv(self, bufsize, flags=0):
        if flags & _WAITALL and self.type == socket.SOCK_STREAM and bufsize > 0:
            buffer = bytearray(bufsize)
            n = self._recv_all(buffer, bufsize, flags)
            data = bytes(buffer[:n])
        else:
            data = self._tracked(False, super().recv, bufsize, flags | _dontwait(self))
        _after_recv(self, "recv", (bufsize,), data, len(data))
        return data

    def recv_into(self, buffer, nbytes=0, flags=0):
        if flags & _WAITALL and self.type == socket.SOCK_STREAM:
            with memoryview(buffer) as view:
                n = self._recv_all(view, nbytes or view.nbytes, flags)
        else:
            n = self._tracked(False, super().recv_into, buffer, nbytes, flags | _dontwait(self))
        _after_recv(self, "recv_into", (), n, n)
        return n

    def _recv_all(self, buffer, nbytes: int, flags: int) -> int:
        """MSG_WAITALL kept: wait (known) until ``nbytes`` came, the peer closed, or the
        socket's timeout; the real calls never block (MSG_WAITALL with MSG_DONTWAIT
        would return what has arrived)."""
        flags &= ~_WAITALL
        with memoryview(buffer) as view, view.cast("B") as target:
            got = 0
            while got < nbytes:
                n = self._tracked(
                    False, super().recv_into, target[got:nbytes], 0, flags | _dontwait(self)
                )
                if n == 0:
                    break  # the peer closed: what came is all there is
                got += n
        return got

    def recvfrom(self, bufsize, flags=0):
        result = self._tracked(False, super().recvfrom, bufsize, flags | _dontwait(self))
        _after_recv(self, "recvfrom", (bufsize,), result, None)
        return result

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        result = self._tracked(
            False, super().recvfrom_into, buffer, nbytes, flags | _dontwait(self)
        )
        _after_recv(self, "recvfrom_into", (), result, None)
        return result

    # --- sending --------------------------------------------------------------------------

    def send(self, data, flags=0):
        _mark(self, "send", data)
        if self.gettimeout() is None and self.type == socket.SOCK_STREAM and _DONTWAIT:
            # A blocking send() on a stream waits until the kernel took all of it (it
            # returns less only when a signal interrupts it): keep that, waiting known.
            sent = self._send_all(data, flags)
        else:
            sent = self._tracked(True, super().send, data, flags | _dontwait(self))
        _traced(self, "send", data, sent)
        return sent

    def sendto(self, data, *args):
        _mark(self, "sendto", data)
        if len(args) == 1:
            sent = self._tracked(True, super().sendto, data, _dontwait(self), args[0])
        else:
            flags, address = args
            sent = self._tracked(True, super().sendto, data, flags | _dontwait(self), address)
        _traced(self, "sendto", data, sent)
        return sent

    def sendall(self, data, flags=0):
        _mark(self, "sendall", data)
        self._send_all(data, flags)
        _traced(self, "sendall", data, None)

    def _send_all(self, data, flags) -> int:
        group = owner()
        timeout = self.gettimeout()
        fd = self.fileno()
        if group is None or timeout == 0 or not _DONTWAIT or fd < 0:
            super().sendall(data, flags)
            return len(data)
        deadline = deadline_after(timeout)  # sendall's timeout bounds the whole call
        with memoryview(data) as view, view.cast("B") as chunk:
            sent, total = 0, len(chunk)
            while sent < total:
                # With a timeout the socket module polls before it sends: ask first.
                if timeout is None or fds_ready(((fd, True),)):
                    try:
                        sent += super().send(chunk[sent:], flags | _DONTWAIT)
                        continue
                    except (BlockingIOError, InterruptedError):
                        pass  # the send buffer is full: wait until there is room
                if not group.wait_fd(fd, True, deadline):
                    raise _timed_out()
        return total

    def shutdown(self, how):
        _mark(self, "shutdown", None)
        return super().shutdown(how)

    def close(self):
        _mark(self, "close", None)
        return super().close()


def _dontwait(sock) -> int:
    # A socket with a timeout is non-blocking inside already; a blocking one needs the
    # flag so that the call after readiness never blocks.
    return _DONTWAIT if sock.gettimeout() is None else 0


def _mark(sock, name: str, data) -> None:
    """Before a send or close: what the server printed so far happened before the peer
    can see this (see ``Server.mark`` and ``_output.py`` on the order of lines)."""
    group = owner()
    if group is None:
        return
    if data is not None and isinstance(data, str):
        error = TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")
        what = f"{data!r}.encode()" if len(data) <= 40 else "the str's .encode()"
        error.add_note(
            f"netlab: sockets carry bytes, not str. Send {what} (or a b'...' literal) instead."
        )
        raise error
    group.mark(sock, name, data)


def _traced(sock, name: str, data, result) -> None:
    group = owner()
    if group is not None:
        group.socket_call(sock, name, (data,), result)


def _after_recv(sock, name: str, args, result, nbytes) -> None:
    group = owner()
    if group is None:
        return
    group.socket_call(sock, name, args, result)
    if nbytes is not None and sock.type == socket.SOCK_STREAM:
        group.eof_spin(sock, nbytes == 0)


# --- TLS -----------------------------------------------------------------------------------


def _ssl_class():
    import ssl

    class ServerSSLSocket(ssl.SSLSocket):
        """The class of TLS sockets in server threads: reads, writes and the handshake
        wait for readiness (marked as waiting), then run without blocking."""

        def _tls(self, what: str, call, *args):
            group = owner()
            timeout = self.gettimeout()
            if group is None or timeout == 0:
                return call(*args)
            deadline = deadline_after(timeout)
            fd = self.fileno()
            socket.socket.settimeout(self, 0)
            try:
                while True:
                    try:
                        return call(*args)
                    except ssl.SSLWantReadError:
                        want_write = False
                    except ssl.SSLWantWriteError:
                        want_write = True
                    except (BlockingIOError, InterruptedError):
                        want_write = what == "write"
                    if not group.wait_fd(fd, want_write, deadline):
                        raise _timed_out(what)
            finally:
                socket.socket.settimeout(self, timeout)

        def read(self, len=1024, buffer=None):  # noqa: A002 - the ssl module's names
            return self._tls("read", super().read, len, buffer)

        def write(self, data):
            _mark(self, "write", data)
            return self._tls("write", super().write, data)

        def send(self, data, flags=0):
            _mark(self, "send", data)
            return self._tls("write", super().send, data, flags)

        def do_handshake(self, block=False):
            return self._tls("handshake", super().do_handshake, block)

        def unwrap(self):
            return self._tls("read", super().unwrap)

        def accept(self):
            group = owner()
            timeout = self.gettimeout()
            if group is not None and timeout != 0:
                if not group.wait_fd(self.fileno(), False, deadline_after(timeout)):
                    raise _timed_out()
            return super().accept()

        def close(self):
            _mark(self, "close", None)
            return super().close()

    return ServerSSLSocket


_ssl_server_class = None


def _patch_socket_init():
    original = socket.socket.__init__

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        group = owner()
        if group is None:
            return
        cls = type(self)
        if cls is socket.socket:
            self.__class__ = ServerSocket
        elif "ssl" in sys.modules and cls is sys.modules["ssl"].SSLSocket:
            global _ssl_server_class
            if _ssl_server_class is None:
                _ssl_server_class = _ssl_class()
            self.__class__ = _ssl_server_class
        group.adopt_socket(self)

    __init__.__wrapped__ = original
    socket.socket.__init__ = __init__

    original_listen = socket.socket.listen

    def listen(self, *args):
        original_listen(self, *args)
        group = owner()
        if group is not None:
            group.listening(self)

    listen.__wrapped__ = original_listen
    socket.socket.listen = listen

    original_bind = socket.socket.bind

    def bind(self, address):
        group = owner()
        if group is not None:
            group.before_bind(self, address)
        original_bind(self, address)
        if group is not None:
            group.bound(self)

    bind.__wrapped__ = original_bind
    socket.socket.bind = bind


# --- selectors and select --------------------------------------------------------------------


def _selector_fds(selector) -> tuple:
    fds = []
    try:
        for key in list(selector.get_map().values()):
            if key.events & selectors.EVENT_READ:
                fds.append((key.fd, False))
            if key.events & selectors.EVENT_WRITE:
                fds.append((key.fd, True))
    except (RuntimeError, ValueError, OSError, AttributeError):
        return ((-1, False),)  # the map changed while we looked: count as ready
    return tuple(fds)


def _in_asyncio_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_SERVE_FOREVER = socketserver.BaseServer.serve_forever.__code__


def _patch_selectors():
    # Every class of the module that defines select() itself: PollSelector, EpollSelector
    # and DevpollSelector inherit theirs from one private base, found through the MRO.
    classes = {
        cls  # a set: DefaultSelector is another name of one of them
        for cls in vars(selectors).values()
        if isinstance(cls, type)
        and issubclass(cls, selectors.BaseSelector)
        and "select" in cls.__dict__
        and not getattr(cls.__dict__["select"], "__isabstractmethod__", False)
    }
    for cls in classes:
        original = cls.__dict__["select"]

        def make(original=original):
            def select_(self, timeout=None):
                group = owner()
                if group is None:
                    return original(self, timeout)
                if group.stopping and not _in_asyncio_loop():
                    group.check_stopping()
                wait = Wait("selector", _selector_fds(self), deadline_after(timeout), id(self))
                if sys._getframe(1).f_code is _SERVE_FOREVER:
                    wait.key = ("serve_forever", id(self))
                group.enter(wait)
                try:
                    return original(self, timeout)
                finally:
                    group.leave(wait)

            select_.__wrapped__ = original
            return select_

        cls.select = make()

    original_select = select.select

    def select_select(rlist, wlist, xlist, timeout=None):
        group = owner()
        if group is None:
            return original_select(rlist, wlist, xlist, timeout)
        group.check_stopping()
        fds = tuple((_fd_of(o), False) for o in rlist) + tuple((_fd_of(o), True) for o in wlist)
        wake = group.wake_socket()
        wait = Wait("select", fds, deadline_after(timeout), ("select", fds))
        group.enter(wait)
        try:
            r, w, x = original_select(list(rlist) + [wake], wlist, xlist, timeout)
        finally:
            group.leave(wait)
        if any(o is wake for o in r):
            group.check_stopping()
            r = [o for o in r if o is not wake]
        return r, w, x

    select_select.__wrapped__ = original_select
    select.select = select_select


def _fd_of(obj) -> int:
    try:
        return obj if isinstance(obj, int) else obj.fileno()
    except (OSError, ValueError, AttributeError):
        return -1


# --- threads, conditions, sleeps ---------------------------------------------------------------


class _Ticket:
    __slots__ = ("wait", "group")

    def __init__(self, group):
        self.group = group
        self.wait = None


def _patch_threading():
    original_start = threading.Thread.start

    def start(self):
        group = owner()
        if group is not None and owner(self) is None:
            group.adopt_thread(self)
        return original_start(self)

    start.__wrapped__ = original_start
    threading.Thread.start = start

    original_join = threading.Thread.join

    def join(self, timeout=None):
        group = owner()
        if group is None or owner(self) is not group:
            return original_join(self, timeout)
        group.check_stopping()
        wait = Wait("join", (), deadline_after(timeout), ("join", id(self)), target=self)
        if not self.is_alive():
            wait.woken = True
        group.enter(wait)
        try:
            return original_join(self, timeout)
        finally:
            group.leave(wait)

    join.__wrapped__ = original_join
    threading.Thread.join = join

    # Condition: every thread's waits are queued here in the order Condition itself
    # queues its waiters, so that notify(n) marks exactly the n it wakes as runnable.
    original_wait = threading.Condition.wait
    original_notify = threading.Condition.notify

    def wait(self, timeout=None):
        queue = self.__dict__.get("_netlab_queue")
        if queue is None:
            queue = self.__dict__.setdefault("_netlab_queue", collections.deque())
        group = owner()
        ticket = _Ticket(group)
        try:
            queue.append(ticket)  # inside the try: an interrupt must not leave it queued
            if group is None:
                return original_wait(self, timeout)
            group.check_stopping()
            ticket.wait = Wait("condition", (), deadline_after(timeout), ("condition", id(self)))
            group.enter(ticket.wait)
            group.waiting_on(self)
            try:
                result = original_wait(self, timeout)
            finally:
                group.leave(ticket.wait)
            group.check_stopping()
            return result
        finally:
            try:
                queue.remove(ticket)
            except ValueError:
                pass  # notify() took it

    def notify(self, n=1):
        queue = self.__dict__.get("_netlab_queue")
        if queue:
            for ticket in list(itertools.islice(queue, n)):
                try:
                    queue.remove(ticket)
                except ValueError:
                    continue
                if ticket.wait is not None:
                    ticket.group.wake(ticket.wait)
        return original_notify(self, n)

    wait.__wrapped__ = original_wait
    notify.__wrapped__ = original_notify
    threading.Condition.wait = wait
    threading.Condition.notify = notify

    original_sleep = time.sleep

    def sleep(secs):
        group = owner()
        if group is None or secs <= 0:
            return original_sleep(secs)
        if group.stop_event.wait(secs):  # a Condition wait: known, with its deadline
            group.check_stopping()
        return None

    sleep.__wrapped__ = original_sleep
    sleep.__doc__ = original_sleep.__doc__
    time.sleep = sleep


# --- executors and socketserver --------------------------------------------------------------


class GroupExecutor(concurrent.futures.Executor):
    """The default executor of a server's asyncio loop (getaddrinfo, to_thread, ...).

    The same job as ThreadPoolExecutor; its idle workers wait on a Condition, which
    netlab knows, where ThreadPoolExecutor's wait on a C queue that it cannot see.
    """

    def __init__(self, name: str, max_workers: int = 8):
        self._name = name
        self._max = max_workers
        self._cond = threading.Condition()
        self._items: collections.deque = collections.deque()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs):
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = concurrent.futures.Future()
            self._items.append((future, fn, args, kwargs))
            if self._idle == 0 and len(self._threads) < self._max:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}-worker-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                try:
                    while not self._items and not self._shutdown:
                        self._cond.wait()
                finally:
                    self._idle -= 1
                if not self._items:
                    return
                future, fn, args, kwargs = self._items.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - the future carries it
                future.set_exception(exc)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._cond:
            self._shutdown = True
            if cancel_futures:
                while self._items:
                    self._items.popleft()[0].cancel()
            self._cond.notify_all()
        if wait:
            for thread in list(self._threads):
                if thread is not threading.current_thread():
                    thread.join()


def _patch_asyncio_and_socketserver():
    original_run_in_executor = asyncio.BaseEventLoop.run_in_executor

    def run_in_executor(self, executor, func, *args):
        if executor is None:
            group = owner()
            if group is not None:
                executor = group.executor()
        return original_run_in_executor(self, executor, func, *args)

    run_in_executor.__wrapped__ = original_run_in_executor
    asyncio.BaseEventLoop.run_in_executor = run_in_executor

    original_run_forever = asyncio.BaseEventLoop.run_forever

    def run_forever(self):
        group = owner()
        if group is not None:
            group.adopt_loop(self)  # whoever started the loop: stop() cancels its tasks
        return original_run_forever(self)

    run_forever.__wrapped__ = original_run_forever
    asyncio.BaseEventLoop.run_forever = run_forever

    original_init = socketserver.BaseServer.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        group = owner()
        if group is not None:
            group.adopt_socketserver(self)

    __init__.__wrapped__ = original_init
    socketserver.BaseServer.__init__ = __init__

    original_shutdown = socketserver.BaseServer.shutdown

    def shutdown(self):
        group = getattr(self, "_netlab_group", None)
        if group is not None:
            group.poll_matters()  # serve_forever's next poll ends the loop: wait for it
        return original_shutdown(self)

    shutdown.__wrapped__ = original_shutdown
    socketserver.BaseServer.shutdown = shutdown


def install() -> None:
    """Apply the patches once per process (idempotent, thread-safe)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _patch_socket_init()
        _patch_selectors()
        _patch_threading()
        _patch_asyncio_and_socketserver()
        _installed = True


__all__ = ["GroupExecutor", "ServerSocket", "ServerStopped", "install"]
