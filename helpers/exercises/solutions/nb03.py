"""Reference solutions of notebook 03 (bytes and streams)."""

import socket
import struct


def recv_exactly(sock, n):
    """Receive exactly n bytes from sock; raise EOFError if the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"connection closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def encode_message(text):
    """A frame: the length of the UTF-8 bytes (4 bytes, big-endian), then the bytes."""
    data = text.encode("utf-8")
    return struct.pack("!I", len(data)) + data


def recv_message(sock):
    """Receive one framed message and return it as str."""
    header = recv_exactly(sock, 4)
    (length,) = struct.unpack("!I", header)
    return recv_exactly(sock, length).decode("utf-8")


def upper_server(port):
    """Serve clients one after another: read until b'', reply in capitals, close."""
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.settimeout(5)
        with conn:
            try:
                data = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                text = data.decode("utf-8")
                conn.sendall(text.upper().encode("utf-8"))
            except (ConnectionError, TimeoutError, UnicodeDecodeError):
                pass  # a client that vanished, stalled or sent bad bytes: serve the next


def download_server(port, data):
    """Send data to every client, then close its connection."""
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.settimeout(5)
        with conn:
            try:
                conn.sendall(data)
            except (ConnectionError, TimeoutError):
                pass  # a client that vanished or stopped reading: serve the next one
