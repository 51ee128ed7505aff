"""Reference solutions of notebook 02 (anatomy of a connection)."""

import os
import socket


def port_is_open(port):
    """True when a server accepts connections on 127.0.0.1:port, within 1 s."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:  # ConnectionRefusedError, TimeoutError, ...
        return False


def make_server_socket(port):
    """A listening socket on 127.0.0.1:port that binds even with TIME_WAIT leftovers."""
    s = socket.socket()
    if os.name != "nt":  # on Windows the option lets another socket take the port (see above)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def hello_server(port):
    """The tutorial's server, fixed: greet client after client, and close each connection."""
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    while True:
        c, addr = s.accept()
        with c:
            c.sendall(b"Thank you for connecting\n")
