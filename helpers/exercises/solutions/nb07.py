"""Reference solutions of notebook 07's exercises (the notebook's hidden cells)."""

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
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)  # wake up ten times a second to look at `stop`
    with listener:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.1)
            with conn:  # closed (a FIN) however the loop ends
                while not stop.is_set():
                    try:
                        data = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    conn.sendall(data)
