"""Reference solutions of notebook 11 (names and addresses)."""

import ipaddress
import selectors
import socket


def format_endpoint(addr):
    """('127.0.0.1', 5000) -> '127.0.0.1:5000'; ('::1', 5000, 0, 0) -> '[::1]:5000'."""
    host, port = addr[0], addr[1]
    if ":" not in host:
        return "%s:%d" % (host, port)
    mapped = ipaddress.ip_address(host.split("%")[0]).ipv4_mapped
    if mapped is not None:
        return "%s:%d" % (mapped, port)  # an IPv4 client seen through an IPv6 socket
    if len(addr) == 4 and addr[3] and "%" not in host:
        host = host + "%" + str(addr[3])  # the scope id: the interface of a link-local address
    return "[%s]:%d" % (host, port)


def connect_any(host, port, timeout):
    """Try every address of host in getaddrinfo's order; (socket or None, failures)."""
    failures = []
    for family, type_, proto, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = None
        try:
            sock = socket.socket(family, type_, proto)  # fails too where IPv6 is off
            sock.settimeout(timeout)
            sock.connect(sockaddr)
        except OSError as exc:
            if sock is not None:
                sock.close()
            failures.append((sockaddr, exc))
            continue
        return sock, failures
    return None, failures


def loopback_echo_server(port):
    """Echo client after client on 127.0.0.1:port and [::1]:port, and nowhere else."""
    listeners = [socket.create_server(("127.0.0.1", port))]
    try:
        listeners.append(socket.create_server(("::1", port), family=socket.AF_INET6))
    except OSError:  # this machine has no IPv6 loopback: IPv4 alone
        pass
    selector = selectors.DefaultSelector()
    for listener in listeners:
        selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():  # whichever listening socket has a client
            conn, addr = key.fileobj.accept()
            with conn:
                conn.settimeout(5)
                while data := conn.recv(4096):
                    conn.sendall(data)


def lookup_problem(exc):
    """What a failed name lookup means, in a few words."""
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    if exc.errno == socket.EAI_AGAIN:
        return "try again later"
    if exc.errno == socket.EAI_SERVICE:
        return "unknown service"
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return "no such name"
    return "not a lookup error"
