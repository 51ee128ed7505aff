"""One thread, many clients: an event loop on ``selectors``.

    srv = netlab.serve(selector_echo_server)     # or: python -m helpers.servers selector 5000

Theory of operation. Every socket is non-blocking and registered with a selector;
``select()`` returns the sockets that are ready, and the loop does exactly the work
that cannot block: accept what is pending, recv what has arrived, send what the kernel
will take now. Each connection keeps an ``outbox`` of bytes still to send.

The rule that keeps the loop from spinning: a socket is registered for WRITE only
while its outbox holds data. An idle socket is nearly always writable, so registering
READ|WRITE for everyone makes ``select()`` return at once, forever: 100 % CPU.

Backpressure: when a client sends faster than it reads its echo, its outbox grows.
Past ``OUTBOX_LIMIT`` the loop stops reading from that client (READ is unregistered)
until the outbox drains, so memory stays bounded and TCP slows the client down.
"""

import os
import selectors
import socket

BACKLOG = 1024
OUTBOX_LIMIT = 1 << 20  # 1 MiB per client
SELECT_TIMEOUT = 1.0  # select() is bounded too: the loop wakes up at least once a second


class Connection:
    """One client: its socket and the bytes still to send to it."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.outbox = bytearray()
        self.peer_closed = False  # the client sent its FIN: finish sending, then close

    def wanted_events(self) -> int:
        events = 0
        if not self.peer_closed and len(self.outbox) < OUTBOX_LIMIT:
            events |= selectors.EVENT_READ
        if self.outbox:
            events |= selectors.EVENT_WRITE  # only when there is something to send
        return events


def accept_all(selector: selectors.BaseSelector, listener: socket.socket) -> None:
    while True:  # many clients may be waiting: take them all, not one per select()
        try:
            sock, _address = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, Connection(sock))


def close(selector: selectors.BaseSelector, conn: Connection) -> None:
    selector.unregister(conn.sock)
    conn.sock.close()


def service(selector: selectors.BaseSelector, conn: Connection, events: int) -> None:
    try:
        if events & selectors.EVENT_READ:
            data = conn.sock.recv(65536)
            if data:
                conn.outbox += data  # your own processing of `data` goes here
            else:
                conn.peer_closed = True
        if events & selectors.EVENT_WRITE and conn.outbox:
            sent = conn.sock.send(conn.outbox)  # may send only part: keep the rest
            del conn.outbox[:sent]
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


def selector_echo_server(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows it would let another socket take this port (notebook 02)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    with selectors.DefaultSelector() as selector, listener:
        selector.register(listener, selectors.EVENT_READ, None)
        while True:
            for key, events in selector.select(timeout=SELECT_TIMEOUT):
                if key.data is None:
                    accept_all(selector, listener)
                else:
                    service(selector, key.data, events)
