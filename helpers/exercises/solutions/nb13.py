"""Reference solutions of notebook 13 (the capstone: a key-value store server)."""

import socket
import struct
import threading

from helpers.exercises.nb13 import (
    BAD_REQUEST,
    IDLE_TIMEOUT,
    MAX_KEY,
    MAX_VALUE,
    NOT_FOUND,
    OK,
    OPS,
    TOO_LARGE,
    encode_request,
)

REQUEST_HEADER = struct.Struct("!cHI")  # op, key length, value length: 7 bytes
RESPONSE_HEADER = struct.Struct("!BI")  # status, value length: 5 bytes


def parse_requests(data):
    """Split ``data`` into complete requests; return (requests, rest)."""
    requests = []
    start = 0
    while len(data) - start >= REQUEST_HEADER.size:
        op_byte, key_length, value_length = REQUEST_HEADER.unpack_from(data, start)
        op = OPS.get(op_byte)
        if op is None:
            requests.append(("ERROR", BAD_REQUEST, b""))
            return requests, b""
        if key_length > MAX_KEY or value_length > MAX_VALUE:
            requests.append(("ERROR", TOO_LARGE, b""))
            return requests, b""
        if key_length == 0 or (op in ("GET", "DEL") and value_length != 0):
            requests.append(("ERROR", BAD_REQUEST, b""))
            return requests, b""
        end = start + REQUEST_HEADER.size + key_length + value_length
        if len(data) < end:
            break  # the body has not all arrived yet
        key_start = start + REQUEST_HEADER.size
        key = bytes(data[key_start : key_start + key_length])
        value = bytes(data[key_start + key_length : end])
        requests.append((op, key, value))
        start = end
    return requests, bytes(data[start:])


def apply(store, lock, op, key, value):
    """Carry out one request on ``store``; return (status, value)."""
    with lock:  # APPEND reads and writes: without the lock, threads lose updates
        if op == "GET":
            return (OK, store[key]) if key in store else (NOT_FOUND, b"")
        if op == "SET":
            store[key] = value
            return OK, b""
        if op == "DEL":
            return (OK, b"") if store.pop(key, None) is not None else (NOT_FOUND, b"")
        new = store.get(key, b"") + value  # APPEND
        if len(new) > MAX_VALUE:
            return TOO_LARGE, b""
        store[key] = new
        return OK, b""


def handle_client(conn, store, lock):
    with conn:
        conn.settimeout(IDLE_TIMEOUT)  # a client that stalls loses its connection
        buffer = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return  # the client has closed
                requests, buffer = parse_requests(buffer + data)
                replies = []
                for op, key, value in requests:
                    if op == "ERROR":  # ("ERROR", status, b""): BAD_REQUEST or TOO_LARGE
                        replies.append(RESPONSE_HEADER.pack(key, 0))
                        conn.sendall(b"".join(replies))
                        return  # after an error, the framing is lost: close
                    status, answer = apply(store, lock, op, key, value)
                    replies.append(RESPONSE_HEADER.pack(status, len(answer)) + answer)
                conn.sendall(b"".join(replies))
        except (ConnectionError, TimeoutError):
            return  # the client vanished, or was too slow: close its connection


def kv_server(port):
    store = {}
    lock = threading.Lock()
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        while True:
            conn, address = listener.accept()
            threading.Thread(target=handle_client, args=(conn, store, lock), daemon=True).start()


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed in the middle of a reply")
        data += chunk
    return data


def kv_call(port, op, key, value=b"", timeout=0.5, retries=2):
    """One request to the server on 127.0.0.1:port; (status, value). Retries on failure."""
    request = encode_request(op, key, value)
    for attempt in range(retries + 1):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
                sock.sendall(request)
                status, length = RESPONSE_HEADER.unpack(recv_exactly(sock, RESPONSE_HEADER.size))
                return status, recv_exactly(sock, length)
        except (ConnectionError, TimeoutError):
            if attempt == retries:
                raise  # the last try failed too: the caller must know
