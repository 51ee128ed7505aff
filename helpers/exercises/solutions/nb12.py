"""Reference solutions of notebook 12's exercises (shown as text in the notebook)."""

import socket
import time


def throughput(port, nbytes):
    data = bytes(nbytes)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.perf_counter_ns()
        sock.sendall(data)
        reply = b""
        while len(reply) < 2:  # b'ok': the server has every byte (it may come as b'o', b'k')
            chunk = sock.recv(2 - len(reply))
            if not chunk:
                break  # the server closed early: reply is not b'ok'
            reply += chunk
        elapsed = (time.perf_counter_ns() - start) / 1e9  # nanoseconds -> seconds
    if reply != b"ok":
        raise ConnectionError(f"the server answered {reply!r}")
    return nbytes / 1_000_000 / elapsed  # MB = 10**6 bytes


def recv_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"the peer closed after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def fetch_all(port, keys):
    values = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for key in keys:
            sock.sendall(len(key).to_bytes(4, "big") + key)  # one write: nothing to hold back
            size = int.from_bytes(recv_exactly(sock, 4), "big")
            values.append(recv_exactly(sock, size))
    return values


def count_bytes(sock):
    total = 0
    while chunk := sock.recv(65536):
        total += len(chunk)
    return total
