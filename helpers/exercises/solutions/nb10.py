"""Reference solutions of notebook 10 (TLS)."""

import socket
import ssl


def tls_echo_server(port, certfile, keyfile):
    """Echo every byte back over TLS, client after client; survive failed handshakes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    with context.wrap_socket(s, server_side=True) as tls_listener:
        while True:
            try:
                conn, addr = tls_listener.accept()  # the TCP accept, then the TLS handshake
            except (ssl.SSLError, OSError):
                continue  # not TLS, our certificate refused, or a reset: next client
            with conn:
                conn.settimeout(10)
                try:
                    while data := conn.recv(4096):
                        conn.sendall(data)
                except (ssl.SSLError, OSError):
                    pass  # the client vanished: serve the next one


def peer_subject(port, hostname, cafile):
    """Connect to 127.0.0.1:port, verify it is ``hostname`` (CA: ``cafile``); its CN."""
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            cert = tls.getpeercert()
    for rdn in cert["subject"]:
        for name, value in rdn:
            if name == "commonName":
                return value
    return None


def diagnose(exc):
    """The cause of a failed TLS connection, from the exception the client got."""
    if isinstance(exc, ssl.SSLCertVerificationError):  # first: it is an SSLError too
        return {
            10: "expired certificate",
            62: "wrong host name",
        }.get(exc.verify_code, "unknown CA")
    if isinstance(exc, ssl.SSLError):
        return "not TLS"
    if isinstance(exc, ConnectionRefusedError):
        return "no server"
    return "unknown"
