"""Thread per connection: the simplest server that serves many clients at once.

    srv = netlab.serve(threaded_echo_server)     # or: python -m helpers.servers threaded 5000

The main thread only accepts; each client gets a thread that reads and echoes until
the client closes. Blocking calls are fine here: each one blocks only its own client.
Bounds: a client silent for ``IDLE_TIMEOUT`` seconds is dropped, so no thread waits
forever (the timeout bounds ``sendall`` to a client that stops reading, too); ``accept()``
waits until netlab's ``srv.stop()`` shuts the socket down. Out of file descriptors
(``Too many open files``), ``accept()`` pauses and retries: see ``resources.py``.
Cost: one thread (and its stack) per client; a few thousand is the practical limit.
"""

import os
import socket
import threading
import time

from .resources import ACCEPT_PAUSE, AcceptGuard

IDLE_TIMEOUT = 60.0
BACKLOG = 1024  # the kernel caps it at net.core.somaxconn


def echo_client(conn: socket.socket) -> None:
    """Echo everything ``conn`` sends until it closes; runs in its own thread."""
    with conn:
        conn.settimeout(IDLE_TIMEOUT)
        try:
            while True:
                data = conn.recv(65536)
                if not data:  # b'': the client closed its side
                    return
                conn.sendall(data)  # send() may send only part: sendall loops for us
        except (TimeoutError, ConnectionError):
            return  # silent too long, or reset: drop this client, keep the others


def threaded_echo_server(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows it would let another socket take this port (notebook 02)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    guard = AcceptGuard("threaded")
    with listener:
        while True:
            try:
                conn, _address = listener.accept()
            except OSError as exc:
                if not guard.failed(exc):
                    raise
                time.sleep(ACCEPT_PAUSE)  # out of descriptors: the client waits in the backlog
                continue
            guard.accepted()
            # start(), not run(): run() would serve this client in the accepting thread,
            # and the next client would wait until this one leaves.
            threading.Thread(target=echo_client, args=(conn,), daemon=True).start()
