"""Reference solutions of notebook 05's exercises (the notebook's hidden cells)."""

import selectors
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


class Client:
    """One connection of selector_server: its socket and the bytes still to send to it."""

    def __init__(self, conn):
        self.conn = conn
        self.outbox = bytearray()
        self.finished = False  # the client sent its last byte (recv gave b'')


def selector_server(port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, data=None)
    while True:
        for key, events in selector.select(timeout=1.0):
            if key.data is None:  # the listener: a client is waiting
                try:
                    conn, addr = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ, data=Client(conn))
                continue
            client = key.data
            try:
                if events & selectors.EVENT_READ:
                    data = client.conn.recv(65536)
                    if data:
                        client.outbox += data  # your own processing of data goes here
                    else:
                        client.finished = True  # b'': send what is left, then close
                if events & selectors.EVENT_WRITE:
                    sent = client.conn.send(client.outbox)  # may take only a part
                    del client.outbox[:sent]
            except BlockingIOError:
                continue  # not ready after all: select() will say when
            except ConnectionError:
                client.finished = True  # reset: nobody to send to any more
                client.outbox.clear()
            if client.finished and not client.outbox:
                selector.unregister(client.conn)  # before close(): forget it, then close
                client.conn.close()
                continue
            wanted = 0
            if not client.finished and len(client.outbox) < 1 << 20:
                wanted = selectors.EVENT_READ  # a full outbox: stop reading (backpressure)
            if client.outbox:
                wanted |= selectors.EVENT_WRITE  # WRITE only while there is data to send
            if wanted != key.events:
                selector.modify(client.conn, wanted, data=client)
