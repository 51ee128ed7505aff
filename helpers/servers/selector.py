"""One thread, many clients: an event loop on ``selectors``.

    srv = netlab.serve(selector_echo_server)     # or: python -m helpers.servers selector 5000

Theory of operation. Every socket is non-blocking and registered with a selector;
``select()`` returns the sockets that are ready, and the loop does exactly the work
that cannot block: accept what is pending, recv what has arrived, send what the kernel
will take now. Each connection keeps an ``outbox`` of bytes still to send. Your own
processing goes where ``service()`` has just read ``data``: turn it into replies and
append them to the outbox, without waiting for anything (the loop serves everyone).

The rule that keeps the loop from spinning: a socket is registered for WRITE only
while its outbox holds data. An idle socket is nearly always writable, so registering
READ|WRITE for everyone makes ``select()`` return at once, forever: 100 % CPU.

Bounds, so that no client can take more than its share:
- memory: when a client sends faster than it reads its echo, its outbox grows. Past
  ``OUTBOX_LIMIT`` the loop stops reading from that client (READ is unregistered)
  until the outbox drains, so TCP slows the client down instead;
- time: a client that made no progress (nothing read from it, nothing sent to it) for
  ``IDLE_TIMEOUT`` seconds is disconnected, a stalled reader included. ``select()``
  waits at most ``SELECT_TIMEOUT``, so the loop looks at least that often;
- file descriptors: when ``accept()`` fails with "Too many open files", the listener
  leaves the selector for ``ACCEPT_PAUSE`` seconds (logged once; ``resources.py``).
"""

import os
import selectors
import socket
import time

from .resources import ACCEPT_PAUSE, AcceptGuard

BACKLOG = 1024
OUTBOX_LIMIT = 256 * 1024  # bytes waiting for one client before we stop reading from it
IDLE_TIMEOUT = 60.0  # seconds without progress before a client is disconnected
SELECT_TIMEOUT = 1.0  # select() is bounded too: the loop wakes up at least once a second


class Connection:
    """One client: its socket, the bytes still to send to it, when it last made progress."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.outbox = bytearray()
        self.peer_closed = False  # the client sent its FIN: finish sending, then close
        self.last_progress = time.monotonic()

    def wanted_events(self) -> int:
        events = 0
        if not self.peer_closed and len(self.outbox) < OUTBOX_LIMIT:
            events |= selectors.EVENT_READ
        if self.outbox:
            events |= selectors.EVENT_WRITE  # only when there is something to send
        return events


def accept_all(selector: selectors.BaseSelector, listener: socket.socket, guard=None) -> bool:
    """Accept every pending client; False when out of descriptors (pause accepting)."""
    while True:  # many clients may be waiting: take them all, not one per select()
        try:
            sock, _address = listener.accept()
        except BlockingIOError:
            return True
        except OSError as exc:
            if guard is None or not guard.failed(exc):
                raise
            return False
        if guard is not None:
            guard.accepted()
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, Connection(sock))


def close(selector: selectors.BaseSelector, conn: Connection) -> None:
    selector.unregister(conn.sock)  # first: the selector forgets it, then the fd is freed
    conn.sock.close()


def service(selector: selectors.BaseSelector, conn: Connection, events: int) -> None:
    try:
        if events & selectors.EVENT_READ:
            data = conn.sock.recv(65536)
            if data:
                conn.outbox += data  # your own processing of `data` goes here
            else:
                conn.peer_closed = True
            conn.last_progress = time.monotonic()
        if events & selectors.EVENT_WRITE and conn.outbox:
            sent = conn.sock.send(conn.outbox)  # may send only part: keep the rest
            del conn.outbox[:sent]
            conn.last_progress = time.monotonic()
    except BlockingIOError:
        pass  # not ready after all: select() will tell us again
    except ConnectionError:
        close(selector, conn)  # reset or broken pipe: this client is gone
        return
    wanted = conn.wanted_events()
    if wanted == 0:  # closed by the client and everything echoed
        close(selector, conn)
    elif wanted != selector.get_key(conn.sock).events:
        selector.modify(conn.sock, wanted, conn)


def drop_idle(selector: selectors.BaseSelector, now: float) -> None:
    """Disconnect every client that made no progress for ``IDLE_TIMEOUT`` seconds."""
    for key in list(selector.get_map().values()):  # a copy: close() changes the map
        conn = key.data
        if isinstance(conn, Connection) and now - conn.last_progress > IDLE_TIMEOUT:
            close(selector, conn)


def selector_echo_server(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows it would let another socket take this port (notebook 02)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    guard = AcceptGuard("selector")
    paused_until = None  # while out of descriptors: when to listen again
    next_sweep = time.monotonic() + SELECT_TIMEOUT
    with selectors.DefaultSelector() as selector, listener:
        selector.register(listener, selectors.EVENT_READ, None)
        while True:
            timeout = SELECT_TIMEOUT
            if paused_until is not None:
                timeout = max(0.0, min(timeout, paused_until - time.monotonic()))
            for key, events in selector.select(timeout=timeout):
                if key.data is None:
                    if not accept_all(selector, listener, guard):
                        selector.unregister(listener)  # no busy loop while out of fds
                        paused_until = time.monotonic() + ACCEPT_PAUSE
                else:
                    service(selector, key.data, events)
            now = time.monotonic()
            if paused_until is not None and now >= paused_until:
                selector.register(listener, selectors.EVENT_READ, None)
                paused_until = None
            if now >= next_sweep:  # once a second, however busy the loop is
                drop_idle(selector, now)
                next_sweep = now + SELECT_TIMEOUT
