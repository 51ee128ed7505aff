"""Notebook 10's checks pass the reference solutions and correct ones in other styles, and
catch the mistakes learners make with TLS, each with the hint that names the real cause.

Real TLS on 127.0.0.1, certificates made by trustme per check; no mocks.
"""

import asyncio
import socket
import ssl
import threading

import pytest

from helpers.exercises import nb10
from helpers.exercises.solutions import nb10 as sol10


def stub(*args):
    raise NotImplementedError


def assert_fails(verdict, *hint_words):
    text = str(verdict)
    assert not verdict.passed, text
    assert "✗" in text, text
    for word in hint_words:
        assert word in verdict.hint, text


def assert_passes(verdict):
    text = str(verdict)
    assert verdict.passed, text
    assert "all" in text and "✗" not in text, text


CHECKS = {
    "tls_echo_server": nb10.check_tls_echo_server,
    "peer_subject": nb10.check_peer_subject,
    "diagnose": nb10.check_diagnose,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_solutions_pass_and_stubs_are_not_done(name):
    check = CHECKS[name]
    assert_passes(check(getattr(sol10, name)))
    verdict = check(stub)
    assert verdict.not_done and "not done yet" in str(verdict)


def test_verdicts_are_the_same_on_every_run():
    """Fresh certificates each time, same text (what nbval compares)."""
    first = str(nb10.check_diagnose(sol10.diagnose))
    assert str(nb10.check_diagnose(sol10.diagnose)) == first
    assert str(nb10.check_peer_subject(stub)) == str(nb10.check_peer_subject(stub))


# --- Exercise 1: tls_echo_server -----------------------------------------------------------


def echo_wrapping_each_connection(port, certfile, keyfile):
    """Another correct style: accept in plain TCP, then wrap the connection."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            raw, _ = listener.accept()
            try:
                conn = context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                raw.close()
                continue
            with conn:
                conn.settimeout(10)
                try:
                    while True:
                        data = conn.recv(1024)
                        if not data:
                            break
                        conn.sendall(data)
                except OSError:
                    pass


def echo_thread_per_client(port, certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)

    def serve(raw):
        try:
            with context.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(10)
                while data := conn.recv(65536):
                    conn.sendall(data)
        except OSError:
            pass

    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        raw, _ = s.accept()
        threading.Thread(target=serve, args=(raw,), daemon=True).start()


async def echo_asyncio(port, certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)

    async def client(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


@pytest.mark.parametrize(
    "server", [echo_wrapping_each_connection, echo_thread_per_client, echo_asyncio]
)
def test_tls_echo_server_passes_other_styles(server):
    assert_passes(nb10.check_tls_echo_server(server))


def echo_without_chain(port, certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # no load_cert_chain
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    with context.wrap_socket(s, server_side=True) as tls:
        while True:
            conn, _ = tls.accept()
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)


def echo_forgets_server_side(port, certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        raw, _ = s.accept()
        with context.wrap_socket(raw) as conn:  # server_side=True forgotten
            while data := conn.recv(4096):
                conn.sendall(data)


def echo_with_client_context(port, certfile, keyfile):
    context = ssl.create_default_context()  # a client's context
    context.load_cert_chain(certfile, keyfile)
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    with context.wrap_socket(s, server_side=True) as tls:
        while True:
            conn, _ = tls.accept()
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)


def echo_plain(port, certfile, keyfile):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass


def echo_dies_on_failed_handshake(port, certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    with context.wrap_socket(s, server_side=True) as tls:
        while True:
            conn, _ = tls.accept()  # raises ssl.SSLError for a client that is not TLS
            with conn:
                conn.settimeout(10)
                while data := conn.recv(4096):
                    conn.sendall(data)


def echo_single_recv(port, certfile, keyfile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    with context.wrap_socket(s, server_side=True) as tls:
        while True:
            try:
                conn, _ = tls.accept()
            except ssl.SSLError:
                continue
            with conn:
                conn.sendall(conn.recv(1024))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (echo_without_chain, "load_cert_chain(certfile, keyfile)"),
        (echo_forgets_server_side, "server_side=True"),
        (echo_with_client_context, "PROTOCOL_TLS_SERVER"),
        (echo_plain, "speaks plain TCP"),
        (echo_dies_on_failed_handshake, "Catch ssl.SSLError"),
        (echo_single_recv, "echo in a loop"),
    ],
)
def test_tls_echo_server_catches(wrong, hint):
    assert_fails(nb10.check_tls_echo_server(wrong), hint)


# --- Exercise 2: peer_subject ------------------------------------------------------------------


def subject_with_ssl_context_class(port, hostname, cafile):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks names too
    context.load_verify_locations(cafile)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls = context.wrap_socket(sock, server_hostname=hostname)
    try:
        return dict(pair for rdn in tls.getpeercert()["subject"] for pair in rdn)["commonName"]
    finally:
        tls.close()


def subject_with_asyncio(port, hostname, cafile):
    async def fetch():
        context = ssl.create_default_context(cafile=cafile)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=hostname), 5
        )
        cert = writer.get_extra_info("peercert")
        writer.close()
        await writer.wait_closed()
        return next(v for rdn in cert["subject"] for k, v in rdn if k == "commonName")

    return asyncio.run(fetch())


@pytest.mark.parametrize("client", [subject_with_ssl_context_class, subject_with_asyncio])
def test_peer_subject_passes_other_styles(client):
    assert_passes(nb10.check_peer_subject(client))


def subject_cert_none(port, hostname, cafile):
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # "it works now"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            cert = tls.getpeercert()  # {} when nothing was verified
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


def subject_cert_none_binary(port, hostname, cafile):
    """Verification off, the subject read from the raw certificate: it 'works'."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def subject_without_server_hostname(port, hostname, cafile):
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:  # no server_hostname
            cert = tls.getpeercert()
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


def subject_no_name_check(port, hostname, cafile):
    """server_hostname left out, so check_hostname turned off: any cert of the CA passes."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:
            cert = tls.getpeercert()
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


def subject_system_cas(port, hostname, cafile):
    context = ssl.create_default_context()  # cafile forgotten
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            cert = tls.getpeercert()
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


def subject_whole_tuple(port, hostname, cafile):
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=hostname) as tls:
            return tls.getpeercert()["subject"]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (subject_cert_none, "CERT_NONE"),
        (subject_cert_none_binary, "verification is off"),
        (subject_without_server_hostname, "server_hostname=hostname"),
        (subject_no_name_check, "server_hostname=hostname"),
        (subject_system_cas, "cafile=cafile"),
        (subject_whole_tuple, "commonName"),
    ],
)
def test_peer_subject_catches(wrong, hint):
    assert_fails(nb10.check_peer_subject(wrong), hint)


# --- Exercise 3: diagnose --------------------------------------------------------------------


def diagnose_by_message(exc):
    """Another correct style: by verify_message and the class hierarchy."""
    if isinstance(exc, ConnectionRefusedError):
        return "no server"
    if not isinstance(exc, ssl.SSLError):
        return "unknown"
    message = getattr(exc, "verify_message", "") or ""
    if "expired" in message:
        return "expired certificate"
    if "mismatch" in message.lower():
        return "wrong host name"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "unknown CA"
    return "not TLS"


def test_diagnose_passes_another_style():
    assert_passes(nb10.check_diagnose(diagnose_by_message))


def diagnose_by_reason(exc):
    if getattr(exc, "reason", None) == "CERTIFICATE_VERIFY_FAILED":
        return "unknown CA"  # all three certificate failures look alike by reason
    if isinstance(exc, ssl.SSLError):
        return "not TLS"
    return "no server"


def diagnose_reads_verify_code_first(exc):
    codes = {20: "unknown CA", 62: "wrong host name", 10: "expired certificate"}
    return codes.get(exc.verify_code, "not TLS")  # AttributeError for the others


def diagnose_sslerror_first(exc):
    if isinstance(exc, ssl.SSLError):  # catches the certificate failures too
        return "not TLS"
    return "no server"


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (diagnose_by_reason, "verify_code 62"),
        (diagnose_reads_verify_code_first, "isinstance(exc, ssl.SSLCertVerificationError)"),
        (diagnose_sslerror_first, "verify_code 20"),
    ],
)
def test_diagnose_catches(wrong, hint):
    assert_fails(nb10.check_diagnose(wrong), hint)


def test_provoked_failures_are_the_ones_the_notebook_shows():
    codes = {
        cause: getattr(nb10.provoke(cause), "verify_code", None)
        for cause in ("unknown CA", "wrong host name", "expired certificate")
    }
    assert codes == {"unknown CA": 20, "wrong host name": 62, "expired certificate": 10}
    not_tls = nb10.provoke("not TLS")
    assert type(not_tls) is ssl.SSLError, repr(not_tls)
    assert isinstance(nb10.provoke("no server"), ConnectionRefusedError)


# --- the notebook's hidden solutions ------------------------------------------------------------


def notebook_solutions():
    """The python blocks of the notebook's "Show a solution" cells, as functions."""
    import json
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "notebooks" / "10-tls.ipynb"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = {}
    for cell in cells:
        text = "".join(cell["source"])
        if cell["cell_type"] != "markdown" or "<summary>Show a solution</summary>" not in text:
            continue
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
            namespace = {"socket": socket, "ssl": ssl, "asyncio": asyncio}
            exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own notebook
            found.update({k: v for k, v in namespace.items() if k in CHECKS})
    return found


def test_the_notebooks_hidden_solutions_pass():
    solutions = notebook_solutions()
    assert sorted(solutions) == sorted(CHECKS)
    for name, solution in solutions.items():
        assert_passes(CHECKS[name](solution))


async def subject_async_def(port, hostname, cafile):
    return "Course check server"


async def diagnose_async_def(exc):
    return "unknown CA"


@pytest.mark.parametrize(
    "check, wrong",
    [
        (nb10.check_peer_subject, subject_async_def),
        (nb10.check_diagnose, diagnose_async_def),
    ],
)
def test_an_async_def_is_named_as_such(check, wrong):
    assert_fails(check(wrong), "plain `def`")
    assert "coroutine object" not in str(check(wrong))
