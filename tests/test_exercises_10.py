"""Notebook 10's checks pass the reference solutions and correct ones in other styles, and
catch the mistakes learners make with TLS, each with the hint that names the real cause.

Real TLS on 127.0.0.1, certificates made by trustme per check; no mocks.
"""

import asyncio
import contextlib
import re
import selectors
import socket
import ssl
import threading

import pytest
from exercise_asserts import (
    assert_not_done,
    assert_passes,
    cell_source,
    fails_with,
    notebook_cells,
    stub,
)

from helpers.exercises import nb10
from helpers.exercises.solutions import nb10 as sol10

CHECKS = {
    "tls_echo_server": nb10.check_tls_echo_server,
    "peer_subject": nb10.check_peer_subject,
    "diagnose": nb10.check_diagnose,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_solutions_pass_and_stubs_are_not_done(name):
    check = CHECKS[name]
    assert_passes(check(getattr(sol10, name)))
    assert_not_done(check(stub))


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
        (echo_dies_on_failed_handshake, "Catch OSError around accept()"),
        (echo_single_recv, "echo in a loop"),
    ],
)
def test_tls_echo_server_catches(wrong, hint):
    fails_with(nb10.check_tls_echo_server(wrong), hint)


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
    fails_with(nb10.check_peer_subject(wrong), hint)


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
        (diagnose_sslerror_first, "the subclass must come first"),
    ],
)
def test_diagnose_catches(wrong, hint):
    fails_with(nb10.check_diagnose(wrong), hint)


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
    found = {}
    for cell in notebook_cells("10-tls.ipynb"):
        text = cell_source(cell)
        if cell["cell_type"] != "markdown" or "<summary>Show a solution</summary>" not in text:
            continue
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
            namespace = {"socket": socket, "ssl": ssl, "asyncio": asyncio}
            exec(compile(block, "10-tls.ipynb", "exec"), namespace)  # noqa: S102 - our notebook
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
    fails_with(check(wrong), "plain `def`")
    assert "coroutine object" not in str(check(wrong))


# --- an independent review: these wrong answers got hints that named another cause ----------


def echo_wraps_each_without_server_side(port, certfile, keyfile):
    """Accepts in plain TCP, wraps each connection as a client, and hides the ValueError."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        raw, _ = listener.accept()
        try:
            conn = context.wrap_socket(raw)  # server_side=True forgotten
        except Exception:
            raw.close()
            continue
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)


def echo_client_auth_context_wraps_each_without_server_side(port, certfile, keyfile):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        raw, _ = listener.accept()
        try:
            conn = context.wrap_socket(raw)
        except (ssl.SSLError, OSError, ValueError):
            raw.close()
            continue
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)


def test_r1_wrapping_each_connection_without_server_side_is_named():
    for wrong in (
        echo_wraps_each_without_server_side,
        echo_client_auth_context_wraps_each_without_server_side,
    ):
        verdict = nb10.check_tls_echo_server(wrong)
        fails_with(
            verdict,
            "server_side=True",
            what=["during the TLS handshake", "without server_side=True"],
            absent=["load_cert_chain"],
        )


def echo_select_ignores_pending(port, certfile, keyfile):
    """A selectors loop that reads 1 KiB per readiness event, as for plain TCP."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", port))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                raw, _ = listener.accept()
                raw.settimeout(5)
                try:
                    conn = context.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    raw.close()
                    continue
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(1024)  # the rest of the record stays in the SSL object
                if data:
                    conn.sendall(data)
                    continue
            except (ssl.SSLError, OSError):
                pass
            sel.unregister(conn)
            conn.close()


def test_r2_a_select_loop_that_ignores_pending_is_told_about_pending():
    verdict = nb10.check_tls_echo_server(echo_select_ignores_pending)
    fails_with(
        verdict,
        "conn.pending() > 0",
        "where select() cannot see it",
        what=["pending() was", "inside your server's SSLSocket"],
        absent=["around accept()"],
    )


def echo_after_the_end(port, certfile, keyfile):
    """Collects everything the client sends, and echoes it once the client has finished."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", port))
    with context.wrap_socket(listener, server_side=True) as tls:
        while True:
            try:
                conn, _ = tls.accept()
            except (ssl.SSLError, OSError):
                continue
            with conn:
                conn.settimeout(10)
                received = b""
                try:
                    while chunk := conn.recv(4096):
                        received += chunk
                    conn.sendall(received)
                except OSError:
                    pass


def test_r3_an_echo_that_waits_for_the_end_of_the_stream_is_named():
    verdict = nb10.check_tls_echo_server(echo_after_the_end)
    fails_with(
        verdict,
        "waits for the end of the stream before it replies",
        what=["came back once the client had ended its side"],
        absent=["echo in a loop"],
    )


def subject_swallows_the_error(port, hostname, cafile):
    """Verifies, but turns a refused certificate into a return value."""
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=hostname) as tls:
                cert = tls.getpeercert()
    except ssl.SSLError as exc:
        return f"verification failed: {exc.reason}"
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


def subject_swallows_into_none(port, hostname, cafile):
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=hostname) as tls:
                cert = tls.getpeercert()
    except ssl.SSLCertVerificationError:
        print("certificate refused")
        return None
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


def subject_raises_its_own_error(port, hostname, cafile):
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with context.wrap_socket(sock, server_hostname=hostname) as tls:
                cert = tls.getpeercert()
    except ssl.SSLError:
        raise RuntimeError("could not verify the server") from None
    return dict(pair for rdn in cert["subject"] for pair in rdn)["commonName"]


@pytest.mark.parametrize(
    "wrong, what",
    [
        (subject_swallows_the_error, "it returned str 'verification failed"),
        (subject_swallows_into_none, "it returned None"),
        (subject_raises_its_own_error, "it raised RuntimeError"),
    ],
)
def test_r4_a_client_that_catches_the_verification_error_is_told_so(wrong, what):
    verdict = nb10.check_peer_subject(wrong)
    fails_with(
        verdict,
        "Your client did verify",
        "TLSV1_ALERT_UNKNOWN_CA",
        "caught the ssl.SSLCertVerificationError",
        what=[what, "although it had refused the certificate"],
        absent=["verification is off"],
    )
    # verification really off still gets its own hint
    fails_with(nb10.check_peer_subject(subject_cert_none_binary), "verification is off")


def diagnose_catches_sslerror_first(exc):
    try:
        raise exc
    except ssl.SSLError:  # catches the certificate failures too: they are SSLErrors
        return "not TLS"
    except ssl.SSLCertVerificationError:
        return {10: "expired certificate", 62: "wrong host name"}.get(exc.verify_code, "unknown CA")
    except ConnectionRefusedError:
        return "no server"


def diagnose_tests_oserror_first(exc):
    if isinstance(exc, ssl.SSLCertVerificationError):
        return {10: "expired certificate", 62: "wrong host name"}.get(exc.verify_code, "unknown CA")
    if isinstance(exc, OSError):  # an SSLError is an OSError too
        return "no server"
    if isinstance(exc, ssl.SSLError):
        return "not TLS"
    return "unknown"


def test_r5_an_except_order_that_hides_a_subclass_is_named():
    verdict = nb10.check_diagnose(diagnose_catches_sslerror_first)
    fails_with(
        verdict,
        "your answer for ssl.SSLError, to an SSLCertVerificationError",
        "the subclass must come first",
        what=["'unknown CA'"],
    )
    verdict = nb10.check_diagnose(diagnose_tests_oserror_first)
    fails_with(verdict, "your answer for OSError, to an SSLError", "the subclass must come first")


def echo_plain_until_the_end(port, certfile, keyfile):
    """Forgets TLS and waits for the whole message: the ClientHello is never answered."""
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            received = b""
            try:
                while chunk := conn.recv(4096):
                    received += chunk
                conn.sendall(received)
            except OSError:
                pass


def echo_one_client_at_a_time_forever(port, certfile, keyfile):
    """Accepts a second client before it serves the first."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", port))
    waiting = []
    while True:
        waiting.append(listener.accept()[0])  # never wrapped until a second one comes
        if len(waiting) == 2:
            for raw in waiting:
                raw.close()
            waiting.clear()


def test_r6_a_handshake_that_does_not_finish_says_what_was_seen():
    verdict = nb10.check_tls_echo_server(echo_plain_until_the_end)
    fails_with(
        verdict,
        "context.wrap_socket(listener, server_side=True)",
        what=["accepted the connection as plain TCP", "never started TLS"],
        absent=["did not finish", "load_cert_chain"],
    )
    verdict = nb10.check_tls_echo_server(echo_one_client_at_a_time_forever)
    fails_with(
        verdict,
        "A TLS server answers the client's ClientHello",
        what=["accepted the connection as plain TCP"],
        absent=["did not finish"],
    )


def test_r7_hint_sentences_are_joined_as_sentences():
    """'Connect to ('127.0.0.1', port); Pass ...' was one sentence with a capital inside."""
    hint = nb10._explain_client_error(socket.gaierror(socket.EAI_NONAME, "no such name"))
    assert not re.search(r"[;,:] [A-Z]", hint.replace("ssl.", "")), hint
    for name in dir(nb10):
        if name.startswith("HINT"):
            text = getattr(nb10, name)
            assert not re.search(r"; [A-Z][a-z]", text), (name, text)


def echo_first_client_only(port, certfile, keyfile):
    """Serves the first TLS client, then stays up without accepting anyone."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    listener = socket.create_server(("127.0.0.1", port))
    with context.wrap_socket(listener, server_side=True) as tls:
        while True:
            try:
                conn, _ = tls.accept()
                break
            except (ssl.SSLError, OSError):
                continue
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)
        threading.Event().wait()  # the function must not return: it waits here


def test_r6_a_connection_never_accepted_is_named_as_such():
    verdict = nb10.check_tls_echo_server(echo_first_client_only)
    fails_with(
        verdict,
        "go back to accept()",
        what=["your server did not accept() the connection within 3 s"],
        absent=["did not finish"],
    )


# --- the walkthrough's findings (notebooks/10 and 11, third walk) ------------------------------


def echo_catches_only_sslerror(port, certfile, keyfile):
    """What §3 used to teach: `except ssl.SSLError` around accept(), nothing else."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    listener = context.wrap_socket(socket.create_server(("127.0.0.1", port)), server_side=True)
    while True:
        try:
            conn, _ = listener.accept()
        except ssl.SSLError as exc:
            print("handshake failed:", exc.reason)
            continue
        with conn, contextlib.suppress(OSError):
            conn.settimeout(10)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)


def test_w1_a_server_that_catches_only_sslerror_dies_on_a_reset_and_is_told_oserror():
    verdict = nb10.check_tls_echo_server(echo_catches_only_sslerror)
    fails_with(
        verdict,
        "ConnectionResetError, an OSError that is no SSLError",
        "Catch OSError around accept()",
        what=["ConnectionResetError"],
    )
    assert "✓ a client that refuses your certificate, then a TLS client" in str(verdict)
    assert "✗ a client that resets the connection at once" in str(verdict)


def echo_without_imports(port, certfile, keyfile):
    """The solution cell run after a kernel restart, without the notebook's imports."""
    context = ssl_not_imported.SSLContext(ssl_not_imported.PROTOCOL_TLS_SERVER)  # noqa: F821
    context.load_cert_chain(certfile, keyfile)


def subject_without_imports(port, hostname, cafile):
    return ssl_not_imported.create_default_context(cafile=cafile)  # noqa: F821


def diagnose_without_imports(exc):
    if isinstance(exc, ssl_not_imported.SSLCertVerificationError):  # noqa: F821
        return "unknown CA"
    return "no server"


@pytest.mark.parametrize(
    "check, wrong",
    [
        (nb10.check_tls_echo_server, echo_without_imports),
        (nb10.check_peer_subject, subject_without_imports),
        (nb10.check_diagnose, diagnose_without_imports),
    ],
)
def test_w2_a_name_error_after_a_restart_says_run_the_imports_again(check, wrong):
    verdict = check(wrong)
    fails_with(
        verdict,
        "Run the notebook's first cell (its imports",
        "not a mistake in your function",
        what=["NameError", "ssl_not_imported"],
        absent=["bind() and listen() first", "Read the exception"],
    )


def test_w4_the_except_order_hint_names_the_subclass_before_its_base():
    verdict = nb10.check_diagnose(diagnose_tests_oserror_first)
    hint = verdict.hint
    order = ["ssl.SSLCertVerificationError", "then ssl.SSLError", "then ConnectionRefusedError"]
    positions = [hint.index(word) for word in order]
    assert positions == sorted(positions), hint
    assert hint.index("ConnectionRefusedError") < hint.index("OSError last"), hint


@pytest.mark.parametrize("wrong_name", ["unknown ca", "bad cert", "", "not tls"])
def test_w5_provoke_refuses_an_unknown_cause_and_lists_the_valid_ones(wrong_name):
    with pytest.raises(ValueError) as raised:
        nb10.provoke(wrong_name)
    message = str(raised.value)
    assert repr(wrong_name) in message, message
    for cause in nb10.CAUSES:
        assert repr(cause) in message, message


def test_w6_the_notebooks_tls_server_catches_oserror_around_accept():
    """§3's tls_server is the model for Exercise 1: it must survive a reset too."""
    sources = [cell_source(c) for c in notebook_cells("10-tls.ipynb") if c["cell_type"] == "code"]
    server = next(s for s in sources if s.startswith("def tls_server("))
    assert "except ssl.SSLError as exc" in server and "except OSError as exc" in server, server
