"""Reference solutions of notebook 01's exercises (the notebook's hidden cells)."""

import socket


def hello_server(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    while True:
        c, addr = s.accept()
        print("Got connection from", addr)
        c.send(f"Hello, {addr[0]}".encode())
        c.close()
        break
    s.close()


def fetch(port):
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    received = b""
    while True:
        chunk = s.recv(1024)
        if chunk == b"":  # the server closed: that was everything
            break
        received += chunk
    s.close()
    return received.decode()  # decode once, at the end: a character can be split across chunks
