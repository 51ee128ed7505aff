"""Reference solutions of notebook 04 (echo and protocols)."""

import socket


def echo_server(port):
    """Echo every byte back until the client has finished; then serve the next one."""
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.settimeout(10)
        with conn:
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    conn.sendall(data)
            except (ConnectionError, TimeoutError):
                pass  # the client vanished, or stayed silent 10 s: serve the next one


def handle_command(line):
    """The reply (without newline) to one line of the protocol."""
    command, _, rest = line.partition(" ")
    if command == "PING":
        return "PONG"
    if command == "ECHO":
        return rest
    if command == "ADD":
        try:
            a, b = rest.split()
            return str(int(a) + int(b))
        except ValueError:
            return "ERR ADD needs two integers"
    if command == "QUIT":
        return "BYE"
    return f"ERR unknown command {command!r}"


def command_server(port):
    """Answer one line after another with handle_command; QUIT ends the conversation."""
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        conn.settimeout(10)
        with conn:
            try:
                serve_lines(conn)
            except (ConnectionError, TimeoutError):
                pass  # the client vanished, or stayed silent 10 s: serve the next one


MAX_LINE = 64 * 1024  # a longer line is an error, not a reason to fill the memory


def serve_lines(conn):
    buffer = b""
    while True:
        while b"\n" not in buffer:
            if len(buffer) > MAX_LINE:
                conn.sendall(b"ERR line too long\n")
                return
            chunk = conn.recv(4096)
            if not chunk:
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        try:
            reply = handle_command(line.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            reply = "ERR not UTF-8"
        conn.sendall(reply.encode("utf-8") + b"\n")
        if line.rstrip(b"\r") == b"QUIT":  # not reply == "BYE": ECHO BYE replies BYE too
            return
