"""Reference solutions of notebook 07's exercises (the notebook's hidden cells)."""

import select
import socket


def read_all(sock, timeout):
    sock.settimeout(timeout)
    chunks = []
    while True:
        chunk = sock.recv(65536)  # raises TimeoutError if nothing comes for `timeout` s
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def ask(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # "my request is complete"; I can still read
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def graceful_server(port, stop):
    listener = socket.socket()
    with listener:  # closed however the function ends
        listener.bind(("127.0.0.1", port))
        listener.listen()
        while not stop.is_set():
            # wait for a client at most 0.1 s at a time, to look at `stop` in between
            if not select.select([listener], [], [], 0.1)[0]:
                continue
            conn, _ = listener.accept()
            with conn:  # closed (a FIN) however the conversation ends
                echo_until_stopped(conn, stop)


def echo_until_stopped(conn, stop):
    conn.settimeout(5)  # bounds recv and sendall (a slow reader gets 5 s), not the waiting
    try:
        while not stop.is_set():
            if not select.select([conn], [], [], 0.1)[0]:
                continue  # a quiet client is still a client
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)
        # Stopping: read what the client sent meanwhile, so that close() sends a FIN
        # (closing with unread bytes would send an RST instead).
        conn.setblocking(False)
        while conn.recv(4096):
            pass
    except (BlockingIOError, ConnectionError, TimeoutError):
        pass  # nothing more to read; or this client vanished or stalled: next one
