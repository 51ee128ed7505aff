"""Notebook 11's checks pass the reference solutions and correct ones in other styles, and
catch the mistakes learners make with names and addresses, each with the hint that names it.

Real sockets on 127.0.0.1 and ::1; the host names are the checks' own (``.test``, answered
by ``nb11.resolving``), so no test asks a DNS server. The tests that need ::1 are skipped
on a machine without it; tests/test_nb11_no_ipv6.py covers that machine.
"""

import asyncio
import ipaddress
import selectors
import socket
import threading
import time

import pytest
from exercise_asserts import assert_not_done, assert_passes, assert_what, fails_with, stub

from helpers.exercises import nb11
from helpers.exercises.solutions import nb11 as sol11

IPV6 = nb11.ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(not IPV6, reason="this machine has no IPv6 loopback")


CHECKS = {
    "format_endpoint": nb11.check_format_endpoint,
    "connect_any": nb11.check_connect_any,
    "loopback_echo_server": nb11.check_loopback_echo_server,
    "lookup_problem": nb11.check_lookup_problem,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_solutions_pass_and_stubs_are_not_done(name):
    check = CHECKS[name]
    assert_passes(check(getattr(sol11, name)))
    assert_not_done(check(stub))


# --- the notebook's helpers ------------------------------------------------------------------


def test_resolving_answers_in_the_given_order_and_filters_by_family():
    with nb11.resolving({"pair.test": ["::1", "127.0.0.1"]}):
        both = socket.getaddrinfo("pair.test", 7, type=socket.SOCK_STREAM)
        four = socket.getaddrinfo("pair.test", 7, socket.AF_INET, socket.SOCK_STREAM)
        other = socket.getaddrinfo("127.0.0.1", 7, type=socket.SOCK_STREAM)
    assert [sa[0] for *_, sa in both] == ["::1", "127.0.0.1"]
    assert [sa for *_, sa in four] == [("127.0.0.1", 7)]
    assert [sa for *_, sa in other] == [("127.0.0.1", 7)]
    assert socket.getaddrinfo is not None and "resolving" not in repr(socket.getaddrinfo)


@needs_ipv6
def test_ipv4_only_server_refuses_on_ipv6_and_refusing_port_refuses_on_both():
    with nb11.Ipv4OnlyServer() as server:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("::1", server.port), timeout=2)
    with nb11.refusing_port() as port:
        for host in ["127.0.0.1", "::1"]:
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, port), timeout=2)


@needs_ipv6
def test_unanswered_on_ipv6_times_out_on_ipv6_only():
    with nb11.unanswered_on_ipv6() as port:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with pytest.raises(TimeoutError):
            socket.create_connection(("::1", port), timeout=0.3)


# --- Exercise 1: format_endpoint ---------------------------------------------------------


def format_endpoint_unpacks(addr):
    host, port, *rest = addr
    ip = ipaddress.ip_address(host.partition("%")[0])
    if ip.version == 4:
        return f"{host}:{port}"
    if ip.ipv4_mapped:
        return f"{ip.ipv4_mapped}:{port}"
    scope = rest[1] if len(rest) > 1 else 0
    zone = f"%{scope}" if scope and "%" not in host else ""
    return f"[{host}{zone}]:{port}"


def format_endpoint_by_length(addr):
    if len(addr) == 2:
        return "%s:%d" % addr
    host, port, _flowinfo, scope_id = addr
    if host.startswith("::ffff:") and "." in host:
        return "%s:%d" % (host[len("::ffff:") :], port)
    if scope_id and "%" not in host:
        host = "%s%%%d" % (host, scope_id)
    return "[%s]:%d" % (host, port)


@pytest.mark.parametrize("alternative", [format_endpoint_unpacks, format_endpoint_by_length])
def test_format_endpoint_passes_other_styles(alternative):
    assert_passes(nb11.check_format_endpoint(alternative))


def format_endpoint_with_netlab(addr):
    from helpers import netlab

    return netlab.format_address(addr)


def format_endpoint_no_scope(addr):
    host, port = addr[:2]
    mapped = ":" in host and ipaddress.ip_address(host.split("%")[0]).ipv4_mapped
    if mapped:
        return f"{mapped}:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def format_endpoint_scope_twice(addr):
    host, port = addr[:2]
    if ":" not in host:
        return f"{host}:{port}"
    mapped = ipaddress.ip_address(host.split("%")[0]).ipv4_mapped
    if mapped:
        return f"{mapped}:{port}"
    if len(addr) == 4 and addr[3]:
        host = f"{host}%{addr[3]}"  # even when the host names its zone already
    return f"[{host}]:{port}"


def format_endpoint_two_items(addr):
    host, port = addr  # IPv4 habits
    return f"{host}:{port}"


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lambda addr: f"{addr[0]}:{addr[1]}", "brackets"),
        (format_endpoint_two_items, "whatever the length"),
        (format_endpoint_with_netlab, "ipv4_mapped"),
        (format_endpoint_no_scope, "scope_id"),
        (format_endpoint_scope_twice, "already contains '%'"),
    ],
)
def test_format_endpoint_catches(wrong, hint):
    fails_with(nb11.check_format_endpoint(wrong), hint)


# --- Exercise 2: connect_any ---------------------------------------------------------------


def connect_any_with_create_connection(host, port, timeout):
    failures = []
    for *_, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        try:
            return socket.create_connection(sockaddr[:2], timeout=timeout), failures
        except OSError as exc:
            failures.append((sockaddr, exc))
    return None, failures


def connect_any_with_closing(host, port, timeout):
    failures = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        try:
            sock = socket.socket(*info[:3])
        except OSError as exc:  # a family this machine lacks
            failures.append((info[4], exc))
            continue
        try:
            sock.settimeout(timeout)
            sock.connect(info[4])
        except OSError as exc:
            failures.append((info[4], exc))
            sock.close()
        else:
            return sock, failures
    return None, failures


@pytest.mark.parametrize(
    "alternative", [connect_any_with_create_connection, connect_any_with_closing]
)
def test_connect_any_passes_other_styles(alternative):
    assert_passes(nb11.check_connect_any(alternative))


def connect_any_ipv4_sockets(host, port, timeout):
    failures = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket()  # always AF_INET
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            sock.close()
            failures.append((sockaddr, exc))
    return None, failures


def connect_any_first_only(host, port, timeout):
    family, type_, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, type_, proto)
    sock.settimeout(timeout)
    sock.connect(sockaddr)
    return sock, []


def connect_any_ipv4_first(host, port, timeout):
    infos = sorted(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), key=lambda i: i[0])
    failures = []
    for family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            sock.close()
            failures.append((sockaddr, exc))
    return None, failures


def connect_any_no_timeout(host, port, timeout):
    failures = []
    for family, type_, proto, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, type_, proto)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            sock.close()
            failures.append((sockaddr, exc))
    return None, failures


def connect_any_leaks(host, port, timeout):
    failures = []
    for family, type_, proto, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, type_, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            failures.append((sockaddr, exc))  # the failed socket is never closed
    return None, failures


def connect_any_hides_failures(host, port, timeout):
    return socket.create_connection((host, port), timeout=timeout), []


def connect_any_socket_only(host, port, timeout):
    return socket.create_connection((host, port), timeout=timeout)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        pytest.param(connect_any_ipv4_sockets, "family", marks=needs_ipv6),
        pytest.param(connect_any_first_only, "catch OSError", marks=needs_ipv6),
        pytest.param(connect_any_ipv4_first, "in the order getaddrinfo returns", marks=needs_ipv6),
        (connect_any_no_timeout, "s.settimeout(timeout)"),
        pytest.param(
            connect_any_leaks, "Close the socket of every failed attempt", marks=needs_ipv6
        ),
        (connect_any_socket_only, "Return a pair"),
        pytest.param(connect_any_hides_failures, "keeps its failures to itself", marks=needs_ipv6),
    ],
)
def test_connect_any_catches(wrong, hint):
    fails_with(nb11.check_connect_any(wrong), hint)


# --- Exercise 3: loopback_echo_server ----------------------------------------------------


def echo(conn):
    with conn:
        conn.settimeout(5)
        while data := conn.recv(4096):
            conn.sendall(data)


def echo_server_threads(port):
    four = socket.create_server(("127.0.0.1", port))
    six = socket.create_server(("::1", port), family=socket.AF_INET6)

    def serve(listener):
        while True:
            conn, _ = listener.accept()
            echo(conn)

    threading.Thread(target=serve, args=(six,), daemon=True).start()
    serve(four)


def echo_server_select_loop(port):
    listeners = [
        socket.create_server((host, port), family=family)
        for family, host in [(socket.AF_INET6, "::1"), (socket.AF_INET, "127.0.0.1")]
    ]
    with selectors.DefaultSelector() as selector:
        for listener in listeners:
            selector.register(listener, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select(timeout=1):
                conn, _ = key.fileobj.accept()
                echo(conn)


@needs_ipv6
@pytest.mark.parametrize("alternative", [echo_server_threads, echo_server_select_loop])
def test_loopback_echo_server_passes_other_styles(alternative):
    assert_passes(nb11.check_loopback_echo_server(alternative))


def echo_server_ipv4_only(port):
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = listener.accept()
        echo(conn)


def echo_server_dual_stack(port):
    listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        conn, _ = listener.accept()
        echo(conn)


def echo_server_alternating(port):
    four = socket.create_server(("127.0.0.1", port))
    six = socket.create_server(("::1", port), family=socket.AF_INET6)
    while True:
        for listener in (four, six):  # accept() on one blocks while the other waits
            conn, _ = listener.accept()
            echo(conn)


def echo_server_no_close(port):
    four = socket.create_server(("127.0.0.1", port))
    while True:
        conn, _ = four.accept()
        conn.settimeout(5)
        data = conn.recv(4096)
        conn.sendall(data)  # and keeps the connection open


@pytest.mark.parametrize(
    "wrong, hint",
    [
        pytest.param(echo_server_ipv4_only, "AF_INET6", marks=needs_ipv6),
        pytest.param(echo_server_dual_stack, "every interface", marks=needs_ipv6),
        pytest.param(echo_server_alternating, "Wait on both listening sockets", marks=needs_ipv6),
        (echo_server_no_close, "until recv() returns b''"),
    ],
)
def test_loopback_echo_server_catches(wrong, hint):
    fails_with(nb11.check_loopback_echo_server(wrong), hint)


# --- Exercise 4: lookup_problem ------------------------------------------------------------


def lookup_problem_table(exc):
    meanings = {
        socket.EAI_NONAME: "no such name",
        socket.EAI_AGAIN: "try again later",
        socket.EAI_SERVICE: "unknown service",
    }
    if hasattr(socket, "EAI_NODATA"):
        meanings[socket.EAI_NODATA] = "no such name"
    if isinstance(exc, socket.gaierror):
        return meanings.get(exc.errno, "not a lookup error")
    return "not a lookup error"


def test_lookup_problem_passes_a_table():
    assert_passes(nb11.check_lookup_problem(lookup_problem_table))


def lookup_problem_every_gaierror_is_no_such_name(exc):
    return "no such name" if isinstance(exc, socket.gaierror) else "not a lookup error"


def lookup_problem_no_isinstance(exc):
    if getattr(exc, "errno", None) == socket.EAI_AGAIN:
        return "try again later"
    if getattr(exc, "errno", None) == socket.EAI_SERVICE:
        return "unknown service"
    return "no such name"


def lookup_problem_refused_is_no_such_name(exc):
    if isinstance(exc, ConnectionRefusedError):  # "nobody there": taken for a missing name
        return "no such name"
    return lookup_problem_table(exc)


def lookup_problem_again_is_no_such_name(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    if exc.errno == socket.EAI_SERVICE:
        return "unknown service"
    return "no such name"


def lookup_problem_forgets_nodata(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    return {
        socket.EAI_NONAME: "no such name",
        socket.EAI_AGAIN: "try again later",
        socket.EAI_SERVICE: "unknown service",
    }.get(exc.errno, "not a lookup error")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lookup_problem_every_gaierror_is_no_such_name, "socket.EAI_SERVICE"),
        (lookup_problem_no_isinstance, "any other code is 'not a lookup error'"),
        (lookup_problem_refused_is_no_such_name, "Only a socket.gaierror is a lookup error"),
        (lookup_problem_again_is_no_such_name, "Temporary failure in name resolution"),
        pytest.param(
            lookup_problem_forgets_nodata,
            "EAI_NODATA",
            marks=pytest.mark.skipif(not hasattr(socket, "EAI_NODATA"), reason="no EAI_NODATA"),
        ),
    ],
)
def test_lookup_problem_catches(wrong, hint):
    fails_with(nb11.check_lookup_problem(wrong), hint)


def test_verdicts_show_no_port_or_platform_number():
    """A failing verdict is the same on every run: no port, no errno number."""
    text = str(nb11.check_connect_any(connect_any_socket_only))
    again = str(nb11.check_connect_any(connect_any_socket_only))
    assert text == again
    text = str(nb11.check_lookup_problem(lookup_problem_no_isinstance))
    assert "-2" not in text and "111" not in text, text


# --- the reviewer's attempts (findings F1 to F14): each gets the verdict it deserves -------
#
# Each function below is an attempt written from the exercise text alone. A correct one
# passes; a wrong one fails with a hint that names its real cause (and not a cause it
# does not have).


# F1: an asyncio server, run by the learner's own asyncio.run (netlab once counted
# asyncio's wake-up socketpair as a server spinning on b'').
async def _f1_handle(reader, writer):
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _f1_main(port):
    try:
        server = await asyncio.start_server(_f1_handle, host=["127.0.0.1", "::1"], port=port)
    except OSError:
        server = await asyncio.start_server(_f1_handle, host="127.0.0.1", port=port)
    async with server:
        await server.serve_forever()


def echo_server_asyncio_run(port):
    asyncio.run(_f1_main(port))


def echo_server_threads_and_return(port):
    """Both listening sockets served by threads; the function itself returns at once."""
    for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
        listener = socket.create_server((host, port), family=family)

        def serve(listener=listener):
            while True:
                conn, _ = listener.accept()
                echo(conn)

        threading.Thread(target=serve, daemon=True).start()


@needs_ipv6
@pytest.mark.parametrize("alternative", [echo_server_asyncio_run, echo_server_threads_and_return])
def test_f1_asyncio_server_and_thread_servers_pass(alternative):
    verdict = nb11.check_loopback_echo_server(alternative)
    assert_passes(verdict)
    assert "recv()" not in str(verdict)


# F2: one recv() then close: each check message used to arrive in one piece.
def echo_server_one_recv(port):
    sel = selectors.DefaultSelector()
    for s in (
        socket.create_server(("127.0.0.1", port)),
        socket.create_server(("::1", port), family=socket.AF_INET6),
    ):
        sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            conn, _ = key.fileobj.accept()
            with conn:
                conn.settimeout(5)
                data = conn.recv(4096)
                conn.sendall(data)


def echo_server_echoes_at_the_end(port):
    """Reads everything until b'', then sends it all back: the client waits in vain."""
    sel = selectors.DefaultSelector()
    for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]:
        sel.register(socket.create_server((host, port), family=family), selectors.EVENT_READ)
    while True:
        key, _ = sel.select()[0]
        conn, _ = key.fileobj.accept()
        with conn:
            conn.settimeout(5)
            received = b""
            while data := conn.recv(4096):
                received += data
            conn.sendall(received)


@needs_ipv6
def test_f2_one_recv_then_close_fails_on_a_message_in_two_parts():
    verdict = nb11.check_loopback_echo_server(echo_server_one_recv)
    fails_with(verdict, "One recv() returns what has arrived so far")
    assert_what(verdict, "closed the connection", "b'second part\\n' never came back")
    assert "two parts" in str(verdict).split("✗")[1].splitlines()[0]


@needs_ipv6
def test_f2_an_echo_that_waits_for_the_end_is_told_to_answer_at_once():
    verdict = nb11.check_loopback_echo_server(echo_server_echoes_at_the_end)
    fails_with(verdict, "as soon as you receive it")
    assert_what(verdict, "did not come back")


# F3: None for a gaierror whose code is not listed.
def lookup_problem_none_for_other_codes(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return "no such name"
    if exc.errno == socket.EAI_AGAIN:
        return "try again later"
    if exc.errno == socket.EAI_SERVICE:
        return "unknown service"


def lookup_problem_other_codes_are_no_such_name(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    if exc.errno == socket.EAI_AGAIN:
        return "try again later"
    if exc.errno == socket.EAI_SERVICE:
        return "unknown service"
    return "no such name"


def test_f3_codes_not_listed_get_not_a_lookup_error():
    verdict = nb11.check_lookup_problem(lookup_problem_none_for_other_codes)
    fails_with(verdict, 'end with `return "not a lookup error"`')
    assert_what(verdict, "it returned None", "'not a lookup error'")
    assert "EAI_FAMILY" in verdict.failure.sent or "EAI_FAIL" in verdict.failure.sent
    verdict = nb11.check_lookup_problem(lookup_problem_other_codes_are_no_such_name)
    fails_with(verdict, "any other code is 'not a lookup error'")


# F4: no isinstance check: every input used to be an OSError with an .errno.
def lookup_problem_errno_of_anything(exc):
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return "no such name"
    if exc.errno == socket.EAI_AGAIN:
        return "try again later"
    if exc.errno == socket.EAI_SERVICE:
        return "unknown service"
    return "not a lookup error"


def test_f4_an_exception_that_is_no_oserror_needs_the_isinstance_check():
    verdict = nb11.check_lookup_problem(lookup_problem_errno_of_anything)
    fails_with(verdict, "Not every exception is an OSError", "isinstance(exc, socket.gaierror)")
    assert_what(verdict, "AttributeError", "errno")


# F5: glibc's numbers written in the code: right on Linux, wrong everywhere else.
def lookup_problem_glibc_numbers(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    if exc.errno in (-2, -5):
        return "no such name"
    if exc.errno == -3:
        return "try again later"
    return {-8: "unknown service"}.get(exc.errno, "not a lookup error")


def lookup_problem_constants_and_harmless_numbers(exc):
    """Numbers that are no getaddrinfo codes compared with anything but the code: fine."""
    if not isinstance(exc, socket.gaierror) or exc.errno is None or exc.args[0:1] == ():
        return "not a lookup error"
    words = {socket.EAI_AGAIN: "try again later", socket.EAI_SERVICE: "unknown service"}
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)):
        return "no such name"
    return words.get(exc.errno, "not a lookup error")[0:]


def test_f5_codes_written_as_numbers_are_caught_in_the_source():
    verdict = nb11.check_lookup_problem(lookup_problem_glibc_numbers)
    fails_with(verdict, "not with numbers", "socket.EAI_NONAME")
    assert_passes(nb11.check_lookup_problem(lookup_problem_constants_and_harmless_numbers))


# F6: '%0' added for a scope id of 0.
def format_endpoint_scope_zero(addr):
    host, port = addr[:2]
    if host.startswith("::ffff:"):
        return f"{host[7:]}:{port}"
    if len(addr) == 4:
        if "%" not in host:
            host = f"{host}%{addr[3]}"
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def format_endpoint_flowinfo_as_scope(addr):
    host, port = addr[:2]
    if ":" not in host:
        return f"{host}:{port}"
    mapped = ipaddress.ip_address(host.split("%")[0]).ipv4_mapped
    if mapped:
        return f"{mapped}:{port}"
    if addr[2] and "%" not in host:  # the 3rd item taken for the scope
        host = f"{host}%{addr[2]}"
    elif addr[3] and "%" not in host:
        host = f"{host}%{addr[3]}"
    return f"[{host}]:{port}"


def test_f6_a_scope_of_zero_is_named_not_the_brackets():
    verdict = nb11.check_format_endpoint(format_endpoint_scope_zero)
    fails_with(verdict, "A scope_id of 0 means no particular interface")
    assert_what(verdict, "'[::1%0]:5000'", absent=["Put it in brackets"])
    verdict = nb11.check_format_endpoint(format_endpoint_flowinfo_as_scope)
    fails_with(verdict, "flowinfo, not the scope")


# F7: a function that never returns.
def format_endpoint_never_returns(addr):
    while True:
        time.sleep(0.05)


def test_f7_a_function_that_hangs_is_not_told_about_sockets():
    verdict = nb11.check_format_endpoint(format_endpoint_never_returns)
    fails_with(verdict, "does a loop never end")
    assert_what(verdict, "it had not returned after 3 s", absent=["No socket is needed"])


# F8: raising when every address failed.
def connect_any_raises_when_all_fail(host, port, timeout):
    failures = []
    for family, type_, proto, _c, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, type_, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            sock.close()
            failures.append((sockaddr, exc))
    raise OSError(f"could not connect to {host}:{port}: {failures}")


def connect_any_reraises_at_once(host, port, timeout):
    for family, type_, proto, _c, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, type_, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, []
        except OSError:
            sock.close()
            raise  # gives up at the first address that fails


@needs_ipv6
def test_f8_raising_after_every_address_is_told_to_return_none_and_failures():
    verdict = nb11.check_connect_any(connect_any_raises_when_all_fail)
    fails_with(verdict, "return (None, failures) instead of raising")
    assert_what(verdict, "after trying every address", absent=["catch OSError"])
    assert str(verdict) == str(nb11.check_connect_any(connect_any_raises_when_all_fail))
    assert "PORT" in verdict.failure.what  # the port is hidden: a verdict is stable
    # giving up at the first failure is a different mistake, with its own hint
    fails_with(nb11.check_connect_any(connect_any_reraises_at_once), "catch OSError")


# F9: only the host of each failed address recorded.
def connect_any_records_the_host_only(host, port, timeout):
    failures = []
    for family, type_, proto, _c, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, type_, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            sock.close()
            failures.append((sockaddr[0], exc))
    return None, failures


def connect_any_records_the_message(host, port, timeout):
    failures = []
    for family, type_, proto, _c, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        sock = socket.socket(family, type_, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            return sock, failures
        except OSError as exc:
            sock.close()
            failures.append((sockaddr, str(exc)))
    return None, failures


@needs_ipv6
def test_f9_a_failure_without_its_sockaddr_is_named():
    verdict = nb11.check_connect_any(connect_any_records_the_host_only)
    fails_with(verdict, "Record the whole sockaddr")
    assert_what(verdict, "the first item of a failure is str '::1'")
    verdict = nb11.check_connect_any(connect_any_records_the_message)
    fails_with(verdict, "Record the exception itself")


# F10: starting over for ever when every address refused.
def connect_any_retries_forever(host, port, timeout):
    while True:
        failures = []
        for family, type_, proto, _c, sockaddr in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        ):
            sock = socket.socket(family, type_, proto)
            sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return sock, failures
            except OSError as exc:
                sock.close()
                failures.append((sockaddr, exc))
        time.sleep(0.5)


def test_f10_a_loop_that_starts_over_is_not_told_to_set_a_timeout():
    verdict = nb11.check_connect_any(connect_any_retries_forever)
    fails_with(verdict, "Do not start over, retry or sleep")
    assert_what(verdict, "had not returned", absent=["s.settimeout(timeout)"])
    # connect_any_no_timeout (above) still gets the timeout hint, where it belongs


# F11: a server that returns after its first client.
def echo_server_returns_after_one_client(port):
    sel = selectors.DefaultSelector()
    for s in (
        socket.create_server(("127.0.0.1", port)),
        socket.create_server(("::1", port), family=socket.AF_INET6),
    ):
        sel.register(s, selectors.EVENT_READ)
    for key, _ in sel.select():
        conn, _ = key.fileobj.accept()
        with conn:
            conn.settimeout(5)
            while data := conn.recv(4096):
                conn.sendall(data)
        return


@needs_ipv6
def test_f11_a_server_that_returned_is_told_so():
    verdict = nb11.check_loopback_echo_server(echo_server_returns_after_one_client)
    fails_with(verdict, "its function must not return")
    assert_what(verdict, "your server function had returned", absent=["got b''"])


# F12: a crash at startup, after the IPv4 socket listens.
def echo_server_ipv6_without_family(port):
    v4 = socket.create_server(("127.0.0.1", port))
    socket.create_server(("::1", port))  # forgot family=socket.AF_INET6
    while True:
        conn, _ = v4.accept()
        echo(conn)


@needs_ipv6
def test_f12_a_crash_is_the_cause_and_its_hint_names_the_family():
    verdict = nb11.check_loopback_echo_server(echo_server_ipv6_without_family)
    fails_with(verdict, "family=socket.AF_INET6")
    assert verdict.failure.what.startswith("your server crashed with OSError"), str(verdict)
    assert_what(verdict, "PORT", absent=["got b''", "Send back every byte"])
    assert str(verdict) == str(nb11.check_loopback_echo_server(echo_server_ipv6_without_family))


# F13: a lookup_problem that never returns for one code.
def lookup_problem_hangs_on_again(exc):
    if isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN:
        time.sleep(3600)
        return "try again later"
    return lookup_problem_table(exc)


def test_f13_a_function_that_never_returns_is_not_said_to_return_none():
    verdict = nb11.check_lookup_problem(lookup_problem_hangs_on_again)
    fails_with(verdict, "does a loop never end")
    assert_what(verdict, "it had not returned after 3 s", absent=["returned None"])


# F14: EAI_SERVICE forgotten; the message compared instead of the code.
def lookup_problem_forgets_service(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    return {
        socket.EAI_NONAME: "no such name",
        getattr(socket, "EAI_NODATA", None): "no such name",
        socket.EAI_AGAIN: "try again later",
    }.get(exc.errno, "not a lookup error")


def lookup_problem_reads_the_message(exc):
    if not isinstance(exc, socket.gaierror):
        return "not a lookup error"
    if "Name or service not known" in str(exc):
        return "no such name"
    if exc.errno == socket.EAI_AGAIN:
        return "try again later"
    if exc.errno == socket.EAI_SERVICE:
        return "unknown service"
    return "not a lookup error"


def test_f14_a_forgotten_code_and_a_compared_message_get_their_own_hints():
    verdict = nb11.check_lookup_problem(lookup_problem_forgets_service)
    fails_with(verdict, "EAI_SERVICE ('Servname not supported", "socket.EAI_SERVICE")
    verdict = nb11.check_lookup_problem(lookup_problem_reads_the_message)
    fails_with(verdict, "not the message")
