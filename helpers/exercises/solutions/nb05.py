"""Reference solutions of notebook 05's exercises (the notebook's hidden cells)."""

import socket
import threading


def threaded_server(port):
    def handle(conn):
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, addr = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


def fetch_all(port, requests):
    replies = [None] * len(requests)
    errors = [None] * len(requests)

    def fetch(index, request):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
                replies[index] = b"".join(chunks)
        except OSError as exc:  # kept for the caller: a thread's exception goes nowhere
            errors[index] = exc

    threads = [threading.Thread(target=fetch, args=(i, r)) for i, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()  # each fetch is bounded by its socket's timeout
    for error in errors:
        if error is not None:
            raise error
    return replies
