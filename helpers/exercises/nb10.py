"""Checks of notebook 10 (TLS): a TLS echo server, a verifying client, a diagnosis.

Rules of this file:
- Every check makes its own certificate authority with trustme, in memory and in a
  temporary folder that it removes: a learner's files are never read or written, and
  no verdict depends on a certificate's random serial number or key.
- The check's TLS peers are real: the learner's server meets ``ssl`` clients of the
  standard library (verifying, refusing, not speaking TLS at all); the learner's client
  meets TLS servers run by netlab (the right certificate, another CA's, another name's).
- Verdicts name OpenSSL's stable facts (``verify_code`` 20, 62, 10; the exception's
  class), never its message text, which changes between OpenSSL versions.
- A hint names what the check saw: the learner's end of the connection as netlab knows
  it (a plain socket, a TLS client socket, bytes waiting in ``pending()``), the alert the
  check's own server got, an echo that came only after close_notify. The learner's
  source is read only to name a cause already seen (``wrap_socket`` without
  ``server_side``, when the server closed during the handshake).

The three causes of a failed verification all raise ``ssl.SSLCertVerificationError``
with reason ``CERTIFICATE_VERIFY_FAILED``; only ``verify_code`` (and ``verify_message``)
tell them apart. That is the lesson of Exercise 3, and why the hints point there.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import inspect
import os
import re
import socket
import ssl
import tempfile
import textwrap
import threading
from dataclasses import dataclass

import trustme

from helpers import netlab

from . import _checker
from ._checker import (
    REPLY_TIMEOUT,
    Failure,
    call_bounded,
    connect,
    describe_value,
    many_clients,
    run_checks,
    server_side,
    serving,
    show_bytes,
)


def describe_exception(exc: BaseException) -> str:
    """``_checker.describe_exception`` without the "(_ssl.c:1006)" that ssl errors end
    with: a line of CPython's C source, which changes between Python builds."""
    return re.sub(r" \(_ssl\.c:\d+\)", "", _checker.describe_exception(exc))


HOSTNAME = "localhost"  # the name the check's certificates are issued for
OTHER_NAME = "other.test"  # a name they are not issued for (.test is reserved: RFC 2606)
SUBJECT_CN = "Course check server"

# What diagnose(exc) must answer, for each failure the notebook provoked.
CAUSES = ("unknown CA", "wrong host name", "expired certificate", "not TLS", "no server")

# OpenSSL's X509_V_ERR_* numbers (include/openssl/x509_vfy.h): stable across versions.
VERIFY_CODES = {
    20: "unknown CA",  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    19: "unknown CA",  # X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN (the root was sent along)
    18: "unknown CA",  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
    62: "wrong host name",  # X509_V_ERR_HOSTNAME_MISMATCH
    64: "wrong host name",  # X509_V_ERR_IP_ADDRESS_MISMATCH
    10: "expired certificate",  # X509_V_ERR_CERT_HAS_EXPIRED
}


# --- certificates ----------------------------------------------------------------------------


@dataclass
class Files:
    cafile: str
    certfile: str
    keyfile: str


@contextlib.contextmanager
def authority(expired: bool = False):
    """A fresh CA and a server certificate for ``localhost`` and 127.0.0.1, in files;
    yields (ca, cert, files). The folder is removed afterwards."""
    ca = trustme.CA()
    dates = {}
    if expired:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # trustme: naive UTC
        day = datetime.timedelta(days=1)
        dates = {"not_before": now - 60 * day, "not_after": now - 30 * day}
    cert = ca.issue_cert(HOSTNAME, "127.0.0.1", common_name=SUBJECT_CN, **dates)
    with tempfile.TemporaryDirectory(prefix="nb10-") as folder:
        files = Files(*(os.path.join(folder, n) for n in ("ca.pem", "cert.pem", "key.pem")))
        ca.cert_pem.write_to_path(files.cafile)
        for blob in cert.cert_chain_pems:
            blob.write_to_path(files.certfile, append=True)
        cert.private_key_pem.write_to_path(files.keyfile)
        yield ca, cert, files


def client_context(ca=None) -> ssl.SSLContext:
    """What a careful client uses: the default context, trusting ``ca`` (if given)."""
    context = ssl.create_default_context()
    if ca is not None:
        ca.configure_trust(context)
    return context


# --- the check's own servers -----------------------------------------------------------------


class _Seen(list):
    """A list of what the check's server saw; ``recorded`` is set at the first entry."""

    def __init__(self):
        super().__init__()
        self.recorded = threading.Event()

    def append(self, item) -> None:
        super().append(item)
        self.recorded.set()


def _tls_peer(port, cert, handshakes=None):
    """A TLS server presenting ``cert``: it reads until the client has finished.

    ``handshakes`` (a list) gets, per client, "accepted" or the reason of the alert
    with which the client refused the certificate (e.g. "TLSV1_ALERT_UNKNOWN_CA").
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    with context.wrap_socket(listener, server_side=True) as tls:
        while True:
            try:
                conn, _ = tls.accept()
            except (ssl.SSLError, OSError) as exc:
                if handshakes is not None:
                    handshakes.append(getattr(exc, "reason", None) or type(exc).__name__)
                continue  # the client refused the certificate: that is the point
            if handshakes is not None:
                handshakes.append("accepted")
            with conn:
                conn.settimeout(REPLY_TIMEOUT)
                with contextlib.suppress(OSError):
                    while conn.recv(4096):
                        pass


def _plain_peer(port):
    """The seed's server: plain TCP, a greeting, then it waits for the client to leave."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(REPLY_TIMEOUT)
            with contextlib.suppress(OSError):
                conn.sendall(b"Thank you for connecting")
                while conn.recv(4096):
                    pass


@contextlib.contextmanager
def peer(kind: str, cert=None, handshakes=None):
    server = netlab.serve(
        _tls_peer if kind == "tls" else _plain_peer,
        *((cert, handshakes) if kind == "tls" else ()),
        port=None,
        name=f"check-nb10-{kind}-peer",
        announce=False,
    )
    try:
        yield server
    finally:
        server.stop()


def handshake(
    server, context, hostname=HOSTNAME, timeout=REPLY_TIMEOUT, seen=None
) -> ssl.SSLSocket:
    """A TLS connection to the learner's ``server`` (the handshake done, or an exception).

    The handshake waits in short slices, so that a learner's server that has crashed
    (netlab knows) ends the wait at once instead of after the whole timeout. When it
    fails, ``seen`` (a list) gets the learner's end of the connection as it was then (the
    socket its accept() returned, or None), for the verdict to say what it was.
    """
    raw = connect(server)
    tls = context.wrap_socket(raw, server_hostname=hostname, do_handshake_on_connect=False)

    def give_up():
        if seen is not None:
            seen.append(_learner_end(server, tls))
        tls.close()

    tls.settimeout(0.1)
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except TimeoutError:
                if deadline.is_set() or not server.running:
                    give_up()
                    raise TimeoutError("the TLS handshake did not finish") from None
            except BaseException:
                give_up()
                raise
    finally:
        timer.cancel()
    tls.settimeout(REPLY_TIMEOUT)
    return tls


def provoke(cause: str) -> BaseException:
    """The exception a careful client gets for ``cause`` (one of CAUSES), for real."""
    if cause not in CAUSES:
        names = ", ".join(repr(c) for c in CAUSES)
        raise ValueError(f"provoke() knows no cause {cause!r}: give one of {names}")
    if cause == "no server":
        # A port held by a socket that does not listen: refused, and nobody can take it.
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            try:
                socket.create_connection(holder.getsockname(), timeout=REPLY_TIMEOUT).close()
            except OSError as exc:
                return exc
        raise RuntimeError("a port that nobody listens on accepted")  # pragma: no cover
    expired = cause == "expired certificate"
    with authority(expired=expired) as (ca, cert, _):
        context = client_context(None if cause == "unknown CA" else ca)
        hostname = OTHER_NAME if cause == "wrong host name" else HOSTNAME
        with peer("plain" if cause == "not TLS" else "tls", cert) as server:
            try:
                handshake(server, context, hostname).close()
            except (ssl.SSLError, OSError) as exc:
                return exc
    raise RuntimeError(f"the handshake for {cause!r} succeeded")  # pragma: no cover


# --- Exercise 1: tls_echo_server --------------------------------------------------------------

HINT_SERVER_CONTEXT = (
    "A server's context is ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) (or "
    "ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)); create_default_context() "
    "without an argument makes a client's context, which wants a server_hostname."
)
HINT_LOAD_CHAIN = (
    "A TLS server must present its certificate and prove it holds the key: call "
    "context.load_cert_chain(certfile, keyfile) before wrapping. Without them OpenSSL "
    "finds no cipher it can use ('no shared cipher') and the client sees a handshake failure."
)
HINT_SERVER_SIDE = (
    "Wrapping an accepted connection, say which end you are: "
    "context.wrap_socket(conn, server_side=True). Without it the socket is a TLS client: "
    "with a server's context wrap_socket() raises ValueError ('Cannot create a client "
    "socket with a PROTOCOL_TLS_SERVER context'), with another it sends a ClientHello of "
    "its own. (A wrapped listening socket's accept() sets server_side itself.)"
)
HINT_HANDSHAKE_ERRORS = (
    "With a wrapped listening socket, accept() also does the TLS handshake: a client that "
    "does not speak TLS, or that refuses your certificate, makes it raise ssl.SSLError, and "
    "one that resets the connection makes it raise ConnectionResetError, an OSError that is "
    "no SSLError. Catch OSError around accept() (every ssl.SSLError is an OSError too) and "
    "serve the next client."
)
HINT_NAME_ERROR = (
    "A NameError means that a name your code uses is not defined in this kernel, most often "
    "a module whose import has not run since the kernel (re)started: it is not a mistake in "
    "your function. Run the notebook's first cell (its imports: socket, ssl, ...) again, "
    "then your function's cell, then this check."
)
HINT_NOT_WRAPPED = (
    "The client got its own ClientHello back: your server speaks plain TCP. Wrap the "
    "listening socket with context.wrap_socket(listener, server_side=True)."
)
HINT_NOT_STARTED = (
    "A TLS server answers the client's ClientHello: wrap the listening socket with "
    "context.wrap_socket(listener, server_side=True) (its accept() does the handshake), "
    "or each accepted connection with context.wrap_socket(conn, server_side=True)."
)
HINT_CLOSED_IN_HANDSHAKE = (
    "Something on your server's side failed before the handshake, and the connection "
    "was closed: print the exception that your `except` catches there (wrap_socket() "
    "raises ValueError for a wrong argument, ssl.SSLError for a failed handshake)."
)
HINT_NOT_ACCEPTED = (
    "A server serves client after client: once a conversation has ended (recv() returned "
    "b''), close that connection and go back to accept()."
)
HINT_ECHO_LOOP = (
    "recv() on a TLS socket returns at most one record's data, often less: echo in a "
    "loop (`while data := conn.recv(4096): conn.sendall(data)`) until recv() returns b''."
)
HINT_PENDING = (
    "select() and selectors ask the kernel whether data waits, and the kernel no longer "
    "holds these bytes: recv() took the whole TLS record from it, decrypted it, returned "
    "what you asked for and kept the rest inside the SSL object, where select() cannot "
    "see it. After each recv(), read on while conn.pending() > 0 before you select again "
    "(or recv() at least 16 KiB, a whole record, at a time)."
)
HINT_WAITS_FOR_EOF = (
    "Your server waits for the end of the stream before it replies: recv() returns b'' "
    "only once the client has finished sending, and this client waits for each echo "
    "before it sends more. Send back each piece as soon as recv() returns it: "
    "`while data := conn.recv(4096): conn.sendall(data)`."
)


class Observed(Failure):
    """A failure whose cause the check saw for itself (bytes waiting inside the server's
    SSL object, an echo that came only after the end of the stream): its hint stands even
    if the server crashes afterwards, as it may when the check closes the connection."""


def _server_crash_hint(exc: BaseException) -> str | None:
    text = str(exc)
    if isinstance(exc, NameError):
        return HINT_NAME_ERROR
    if isinstance(exc, ssl.SSLError) and "NO_SHARED_CIPHER" in (exc.reason or text.upper()):
        return HINT_LOAD_CHAIN
    if "client socket with a PROTOCOL_TLS_SERVER" in text:
        return HINT_SERVER_SIDE
    if "server_hostname" in text:
        return HINT_SERVER_CONTEXT
    if isinstance(exc, ssl.SSLError):
        return HINT_HANDSHAKE_ERRORS
    if isinstance(exc, FileNotFoundError):
        return "Load the files the check gives you: load_cert_chain(certfile, keyfile)."
    if isinstance(exc, ConnectionError):
        return HINT_HANDSHAKE_ERRORS
    return None


def _learner_end(server, tls):
    """The learner's end of the check's connection ``tls`` (what its accept() returned:
    a plain socket, or an SSLSocket), or None when the server has not accepted it."""
    try:
        return server_side(server, tls)
    except (OSError, ValueError):
        return None


def _pending(end) -> int:
    """Decrypted bytes that wait inside the SSL object of the learner's end."""
    if isinstance(end, ssl.SSLSocket):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            return end.pending()
    return 0


def _wraps_without_server_side(function) -> bool:
    """Whether ``function``'s source calls wrap_socket() without server_side (which an
    accepted connection needs; a wrapped listening socket's accept() sets it itself)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError, ValueError):
        return False  # no source to read: what happened decides alone
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "wrap_socket"
        and len(node.args) < 2
        and not any(k.arg in ("server_side", None) for k in node.keywords)
        for node in ast.walk(tree)
    )


def _handshake_failure(exc: BaseException, end, learner) -> tuple[str, str]:
    """(what happened, hint) for a TLS handshake with the learner's server that failed
    with ``exc``; ``end`` is the learner's end of the connection at that moment."""
    reason = getattr(exc, "reason", None)
    if isinstance(end, ssl.SSLSocket) and not end.server_side:
        return (
            "the TLS handshake failed: your server's end of the connection is a TLS client "
            "socket (wrapped without server_side=True), which waits for a ServerHello too",
            HINT_SERVER_SIDE,
        )
    if isinstance(exc, TimeoutError):
        if end is None:
            return (
                f"your server did not accept() the connection within {REPLY_TIMEOUT:g} s",
                HINT_NOT_ACCEPTED,
            )
        if not isinstance(end, ssl.SSLSocket):
            return (
                "your server accepted the connection as plain TCP and sent nothing back to "
                f"the client's ClientHello within {REPLY_TIMEOUT:g} s: it never started TLS",
                HINT_NOT_STARTED,
            )
        return (
            "your server wrapped the connection but did not answer the client's ClientHello "
            f"within {REPLY_TIMEOUT:g} s (with do_handshake_on_connect=False, the handshake "
            "waits for your first recv() or do_handshake())",
            HINT_NOT_STARTED,
        )
    if reason == "UNEXPECTED_MESSAGE":
        return (
            "the TLS handshake failed: the answer to the client's ClientHello was no "
            "ServerHello (unexpected message)",
            HINT_NOT_WRAPPED,
        )
    if (
        isinstance(exc, ConnectionError | ssl.SSLEOFError)
        or reason == "UNEXPECTED_EOF_WHILE_READING"
    ):
        how = "reset" if isinstance(exc, ConnectionResetError) else "closed"
        what = (
            f"your server {how} the connection during the TLS handshake, with no answer "
            "to the client's ClientHello (no ServerHello, no alert)"
        )
        if learner is not None and _wraps_without_server_side(learner):
            return (
                what + "; your code calls wrap_socket() without server_side=True",
                HINT_SERVER_SIDE,
            )
        return what, HINT_CLOSED_IN_HANDSHAKE
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed: your server sent the alert {reason}", HINT_LOAD_CHAIN
    return f"the TLS handshake failed: {describe_exception(exc)}", HINT_NOT_STARTED


def _reply_after_close_notify(server, context, piece: bytes) -> bytes:
    """Send ``piece`` over a new TLS connection, end the sending side with close_notify
    (TLS's end of stream; TCP stays open both ways) and return what comes back.

    An SSLObject (TLS on memory buffers) can still read after its close_notify, which
    an SSLSocket cannot: ``unwrap()`` would wait for the server's close_notify first.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=HOSTNAME)
    got = b""
    try:
        with connect(server) as sock:

            def run(call, *args):
                while True:
                    try:
                        return call(*args)
                    except ssl.SSLWantReadError:
                        sock.sendall(outgoing.read())
                        data = sock.recv(65536)
                        incoming.write(data) if data else incoming.write_eof()

            run(tls.do_handshake)
            tls.write(piece)
            with contextlib.suppress(ssl.SSLWantReadError):
                tls.unwrap()  # puts our close_notify in the outgoing buffer
            sock.sendall(outgoing.read())
            while len(got) < len(piece) and (chunk := run(tls.read, 65536)):
                got += chunk
    except (ssl.SSLError, OSError, Failure):
        pass  # the server closed, or never answered: what came so far is the answer
    return got


def _echo(server, context, pieces, sent, learner=None):
    """Send ``pieces`` over TLS, each once the echo of the one before has come back.
    ``learner``: the learner's server function (its source may explain a failure)."""
    seen = []
    try:
        tls = handshake(server, context, seen=seen)
    except ssl.SSLCertVerificationError as exc:
        raise Failure(
            f"the check's client refused your certificate ({exc.verify_message})",
            "Load the certificate and key the check gives you: load_cert_chain(certfile, keyfile).",
            sent,
        ) from None
    except (ssl.SSLError, TimeoutError, ConnectionError) as exc:
        what, hint = _handshake_failure(exc, seen[0] if seen else None, learner)
        raise Failure(what, hint, sent) from None
    with tls:
        for piece in pieces:
            tls.sendall(piece)
            got = b""
            timed_out = False
            try:
                while len(got) < len(piece):
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except TimeoutError:
                timed_out = True
            except (ssl.SSLError, ConnectionError) as exc:
                raise Failure(
                    f"after {show_bytes(got)} the connection broke: {describe_exception(exc)}",
                    HINT_ECHO_LOOP,
                    sent,
                ) from None
            if got == piece:
                continue
            what = f"got {show_bytes(got)}, expected {show_bytes(piece)}"
            if timed_out:
                waiting = _pending(_learner_end(server, tls))
                if waiting:
                    raise Observed(
                        f"{what}: {waiting} more bytes waited inside your server's SSLSocket, "
                        f"decrypted already (conn.pending() was {waiting}), and it did not "
                        f"read them within {REPLY_TIMEOUT:g} s",
                        HINT_PENDING,
                        sent,
                    )
                if not got:
                    tls.close()
                    if _reply_after_close_notify(server, context, piece) == piece:
                        raise Observed(
                            f"nothing came back within {REPLY_TIMEOUT:g} s while the client "
                            f"waited; on a new connection, {show_bytes(piece)} came back once "
                            "the client had ended its side of the stream (TLS close_notify)",
                            HINT_WAITS_FOR_EOF,
                            sent,
                        )
            raise Failure(what, HINT_ECHO_LOOP, sent)


def _not_tls_client(server):
    with connect(server) as sock:
        sock.sendall(b"hello\n")
        with contextlib.suppress(OSError):
            while sock.recv(4096):
                pass


def _refusing_client(server):
    with contextlib.suppress(ssl.SSLError, OSError):
        handshake(server, client_context(None)).close()


def _resetting_client(server):
    """Connects, then resets at once, before any ClientHello: the server's handshake (in
    accept() or wrap_socket()) raises ConnectionResetError, which is no ssl.SSLError."""
    netlab.reset(connect(server))


def check_tls_echo_server(tls_echo_server) -> object:
    """Attack ``tls_echo_server(port, certfile, keyfile)`` with verifying TLS clients."""
    big = bytes((i * 7 + 3) % 256 for i in range(100_000))

    def echo(server, context, pieces, sent):
        _echo(server, context, pieces, sent, tls_echo_server)

    def run(body):
        def check():
            observed = []

            def crash_hint(exc):  # a cause the check saw itself beats a crash that followed
                return None if observed else _server_crash_hint(exc)

            with authority() as (ca, _, files):
                args = (files.certfile, files.keyfile)
                try:
                    with serving(tls_echo_server, crash_hint, args) as server:
                        try:
                            body(server, client_context(ca))
                        except Observed:
                            observed.append(True)
                            raise
                except Failure as failure:  # the crash, as serving() describes it
                    what = re.sub(r" \(_ssl\.c:\d+\)", "", failure.what)
                    raise Failure(what, failure.hint, failure.sent) from None

        return check

    def after(first, what):
        def body(server, context):
            sent = f"{what}; then b'next' over TLS"
            try:
                first(server)
                server.wait_quiet(1.0)
                echo(server, context, [b"next"], sent)
            except Failure as failure:
                raise type(failure)(failure.what, failure.hint, failure.sent or sent) from None

        return body

    def many(server, context):
        def talk(i):
            echo(server, context, [b"client %d" % i], f"client {i + 1} of 10")

        for index, result in enumerate(many_clients(10, talk)):
            if isinstance(result, Failure):
                raise type(result)(
                    f"client {index + 1}: {result.what}",
                    result.hint or HINT_ECHO_LOOP,
                    "10 TLS clients at once",
                )

    return run_checks(
        "tls_echo_server",
        [
            (
                "a verifying TLS client: b'hello' comes back",
                run(
                    lambda s, c: echo(
                        s,
                        c,
                        [b"hello"],
                        "b'hello' over TLS (server name 'localhost', the check's CA)",
                    )
                ),
            ),
            (
                "100 KB in pieces of 16 KB",
                run(
                    lambda s, c: echo(
                        s,
                        c,
                        [big[i : i + 16384] for i in range(0, len(big), 16384)],
                        f"{show_bytes(big)}, 16 KB at a time, each after the echo of the last",
                    )
                ),
            ),
            (
                "a client that does not speak TLS, then a TLS client",
                run(after(_not_tls_client, "b'hello\\n' in plain TCP")),
            ),
            (
                "a client that refuses your certificate, then a TLS client",
                run(after(_refusing_client, "a client that does not trust the check's CA")),
            ),
            (
                "a client that resets the connection at once, then a TLS client",
                run(after(_resetting_client, "a connection reset (RST) before any ClientHello")),
            ),
            ("10 TLS clients at once", run(many)),
        ],
    )


# --- Exercise 2: peer_subject ---------------------------------------------------------------------

HINT_CAFILE = (
    "Trust the notebook's CA: ssl.create_default_context(cafile=cafile). The default "
    "context trusts only the system's CAs, which never signed this certificate."
)
HINT_VERIFY_OFF = (
    "Your client accepted a certificate that nobody it trusts signed: verification is off. "
    "Keep ssl.create_default_context(cafile=cafile) as it is: no check_hostname = False, "
    "no verify_mode = ssl.CERT_NONE."
)
HINT_HOSTNAME = (
    "Your client accepted a certificate issued for another name. Pass "
    "server_hostname=hostname to wrap_socket() and keep check_hostname on: the CA's "
    "signature says who the certificate belongs to, the name check says it is who you wanted."
)
HINT_SERVER_HOSTNAME = (
    "Pass the name to check: context.wrap_socket(sock, server_hostname=hostname). "
    "The address you connect to (127.0.0.1) and the name you verify are separate things."
)
HINT_SWALLOWED = (
    "Your client did verify: it refused the certificate (the server saw its alert, {alert}). "
    "Then your function caught the ssl.SSLCertVerificationError and {did} instead, so the "
    "caller cannot tell that the server was not who it claimed to be. Let the error out: "
    "no try/except around wrap_socket() (or `raise` again in the except block)."
)
HINT_CN = (
    "getpeercert()['subject'] is a tuple of RDNs, each a tuple of (name, value) pairs: "
    "return the value whose name is 'commonName' (a str)."
)


def _not_async(func) -> None:
    """An ``async def`` returns a coroutine when called: say so, not "it returned <coroutine>"."""
    if inspect.iscoroutinefunction(func):
        raise Failure(
            "it is an `async def`: calling it returns a coroutine, not a result",
            "Write it as a plain `def` (use asyncio.run(...) inside it if you want asyncio).",
        )


def _subject_call(peer_subject, port, hostname, cafile):
    _not_async(peer_subject)
    return call_bounded(peer_subject, port, hostname, cafile, timeout=REPLY_TIMEOUT + 2)


def _explain_client_error(error: BaseException) -> str:
    if isinstance(error, NameError):
        return HINT_NAME_ERROR
    if isinstance(error, ssl.SSLCertVerificationError):
        return HINT_CAFILE
    if isinstance(error, ValueError) and "server_hostname" in str(error):
        return HINT_SERVER_HOSTNAME
    if isinstance(error, (KeyError, IndexError, TypeError)):
        return (
            "getpeercert() returns {} when verification is off (ssl.CERT_NONE): keep the "
            "default context's CERT_REQUIRED. " + HINT_CN
        )
    if isinstance(error, socket.gaierror):
        return (
            "Connect to ('127.0.0.1', port): the host name is the name to verify, which "
            "need not resolve. " + HINT_SERVER_HOSTNAME
        )
    return "Read the exception: connect to ('127.0.0.1', port) and wrap the socket."


def check_peer_subject(peer_subject) -> object:
    """Check ``peer_subject(port, hostname, cafile)``: verify, then report the subject CN."""

    def good():
        with authority() as (_, cert, files), peer("tls", cert) as server:
            call = _subject_call(peer_subject, server.port, HOSTNAME, files.cafile)
        sent = f"peer_subject(port, {HOSTNAME!r}, cafile): a server with a certificate of that CA"
        if not call.finished:
            raise Failure(
                "it did not return within 5 s",
                "Give the socket a timeout: create_connection(..., timeout=5).",
                sent,
            )
        if call.error is not None:
            raise Failure(
                f"it raised {describe_exception(call.error)}",
                _explain_client_error(call.error),
                sent,
            )
        if call.result != SUBJECT_CN:
            raise Failure(
                f"it returned {call.result!r:.60}, expected {SUBJECT_CN!r}", HINT_CN, sent
            )

    def refused(kind):
        def check():
            with authority() as (_, cert, files):
                if kind == "impostor":
                    with authority() as (_, other_cert, _):
                        cert = other_cert  # signed by another CA than the one in cafile
                hostname = OTHER_NAME if kind == "name" else HOSTNAME
                handshakes = _Seen()  # what the check's server saw of each handshake
                with peer("tls", cert, handshakes) as server:
                    call = _subject_call(peer_subject, server.port, hostname, files.cafile)
                    if call.finished and not isinstance(call.error, ssl.SSLCertVerificationError):
                        # the verdict needs the server's side of the handshake, which its
                        # thread records once accept() has failed: wait for it (busy machine)
                        handshakes.recorded.wait(2.0)
            sent = f"peer_subject(port, {hostname!r}, cafile): " + (
                "a certificate signed by another CA"
                if kind == "impostor"
                else f"a certificate of that CA for {HOSTNAME!r}"
            )
            if not call.finished:
                raise Failure(
                    "it did not return within 5 s",
                    "Give the socket a timeout: create_connection(..., timeout=5).",
                    sent,
                )
            if isinstance(call.error, ssl.SSLCertVerificationError):
                return
            alerts = [h for h in handshakes if h != "accepted"]
            if alerts and "accepted" not in handshakes:
                did = (
                    f"returned {describe_value(call.result)}"
                    if call.error is None
                    else f"raised {describe_exception(call.error)}"
                )
                raise Failure(
                    f"it {did} instead of raising ssl.SSLCertVerificationError, although "
                    "it had refused the certificate",
                    HINT_SWALLOWED.format(alert=alerts[0], did=did),
                    sent,
                )
            if call.error is None:
                raise Failure(
                    f"it returned {call.result!r:.60} instead of raising "
                    "ssl.SSLCertVerificationError",
                    HINT_VERIFY_OFF if kind == "impostor" else HINT_HOSTNAME,
                    sent,
                )
            hint = _explain_client_error(call.error)
            if isinstance(call.error, (KeyError, IndexError, TypeError)):
                hint = HINT_VERIFY_OFF
            raise Failure(
                f"it raised {describe_exception(call.error)}, not ssl.SSLCertVerificationError",
                hint,
                sent,
            )

        return check

    return run_checks(
        "peer_subject",
        [
            ("a server your CA vouches for: its subject's commonName", good),
            ("an impostor (another CA signed its certificate) is refused", refused("impostor")),
            ("a certificate for another name is refused", refused("name")),
        ],
    )


# --- Exercise 3: diagnose (the exceptions are real; no sockets in the learner's code) ------------

CAUSE_HINTS = {
    "unknown CA": (
        "An ssl.SSLCertVerificationError with verify_code 20 ('unable to get local issuer "
        "certificate'): nobody the client trusts signed the server's certificate."
    ),
    "wrong host name": (
        "An ssl.SSLCertVerificationError with verify_code 62 ('Hostname mismatch, ...'): "
        "the certificate is valid, but for another name than server_hostname."
    ),
    "expired certificate": (
        "An ssl.SSLCertVerificationError with verify_code 10 ('certificate has expired')."
    ),
    "not TLS": (
        "An ssl.SSLError that is not an SSLCertVerificationError (here reason "
        "'WRONG_VERSION_NUMBER'; other OpenSSL versions word it otherwise): the server "
        "answered in plain text. Test the subclass first: every SSLCertVerificationError is "
        "an SSLError too."
    ),
    "no server": ("A ConnectionRefusedError: nothing listens on that port, TLS never started."),
}
HINT_SAME_REASON = (
    " The three certificate failures share the class and exc.reason "
    "('CERTIFICATE_VERIFY_FAILED'): tell them apart by exc.verify_code (or exc.verify_message)."
)


CERTIFICATE_CAUSES = ("unknown CA", "wrong host name", "expired certificate")
# The answer a diagnosis gives when it tests this class (a base class of others) first.
BASE_CLASS_ANSWERS = {"not TLS": "ssl.SSLError", "no server": "OSError"}
HINT_EXCEPT_ORDER = (
    "It answered {answer!r}, your answer for {base}, to an {kind}, which is an {base} "
    "too (a subclass of it). The first `except` clause (or isinstance() test) that "
    "matches wins, so the subclass must come first: ssl.SSLCertVerificationError, then "
    "ssl.SSLError, then ConnectionRefusedError, and OSError last."
)


def _tested_base_first(cause: str, exc: BaseException, answer) -> str | None:
    """The hint for a diagnosis that gave ``exc`` the answer of one of its base classes
    (ssl.SSLError's "not TLS", OSError's "no server"): it tested that class first."""
    base = BASE_CLASS_ANSWERS.get(answer) if isinstance(answer, str) else None
    if base is None or answer == cause:
        return None
    base_class = ssl.SSLError if base == "ssl.SSLError" else OSError
    if not isinstance(exc, base_class) or type(exc) is base_class:
        return None
    return HINT_EXCEPT_ORDER.format(answer=answer, base=base, kind=type(exc).__name__)


def check_diagnose(diagnose) -> object:
    """Check ``diagnose(exc)`` against each failure, provoked for real."""

    def case(cause):
        def check():
            _not_async(diagnose)
            exc = provoke(cause)
            sent = f"the {type(exc).__name__} of a careful client facing: {cause}"
            call = call_bounded(diagnose, exc)
            hint = CAUSE_HINTS[cause]
            if cause in CERTIFICATE_CAUSES:
                hint += HINT_SAME_REASON
            if call.error is not None:
                if isinstance(call.error, NameError):
                    hint = HINT_NAME_ERROR
                elif isinstance(call.error, AttributeError):
                    hint = (
                        "Not every exception has verify_code: check "
                        "isinstance(exc, ssl.SSLCertVerificationError) first. " + hint
                    )
                raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
            if call.result != cause:
                hint = _tested_base_first(cause, exc, call.result) or hint
                raise Failure(f"it returned {call.result!r:.60}, expected {cause!r}", hint, sent)

        return check

    return run_checks("diagnose", [(f"{cause!r}", case(cause)) for cause in CAUSES])
