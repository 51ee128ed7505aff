"""Exercises of notebook 11, names and addresses: each ``check_<name>(function)``.

    from helpers.exercises import nb11
    nb11.check_connect_any(connect_any)

Rules of this file:
- Traffic stays on loopback (127.0.0.1 and ::1), and no check ever asks a real DNS
  server: the host names the checks use end in ``.test`` (reserved for testing, RFC 6761)
  and are answered by ``resolving()``, a stand-in for ``socket.getaddrinfo`` that turns
  a name into the numeric addresses the check chose, in the check's order.
- A machine without an IPv6 loopback (``ipv6_loopback()`` is False) still gets a
  verdict: the checks that need ::1 are left out, and a check's title says so.
- Verdicts never show a port or a timing; getaddrinfo codes are named (``EAI_NONAME``),
  not numbered, since their numbers differ between platforms.

It also holds the situations notebook 11 sets up with real sockets (``Ipv4OnlyServer``,
``refusing_port``, ``unanswered_on_ipv6``), so that the notebook and the checks share
them: a port held on both 127.0.0.1 and ::1, so no other program answers on either.
"""

from __future__ import annotations

import ast
import contextlib
import dis
import errno
import gc
import inspect
import linecache
import re
import socket
import sys
import textwrap
import time
import warnings

import psutil

from ._checker import (
    CALL_TIMEOUT,
    HINT_EOF_SPIN,
    HINT_RETURNED_NONE,
    REPLY_TIMEOUT,
    Failure,
    WatchedCall,
    call_bounded,
    describe_exception,
    describe_value,
    read_reply,
    read_to_eof,
    run_checks,
    serving,
    show_bytes,
    still_listens,
)
from .nb02 import full_backlog

# --- the machine, and a resolver we control ------------------------------------------------


def ipv6_loopback() -> bool:
    """True when this machine can listen on ::1 and connect to it (bounded, 1 s)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as listener:
            listener.bind(("::1", 0))
            listener.listen(1)
            with socket.create_connection(listener.getsockname()[:2], timeout=1):
                return True
    except OSError:
        return False


@contextlib.contextmanager
def resolving(names: dict[str, list[str]]):
    """Within the block, ``socket.getaddrinfo(name, ...)`` answers ``names[name]``.

        with resolving({"localhost": ["::1", "127.0.0.1"]}):
            socket.create_connection(("localhost", port))   # tries ::1, then 127.0.0.1

    The answer is the real getaddrinfo's for each numeric address, in the given order,
    filtered by family and socket type as usual; other names go to the real resolver.
    It stands in for a line in /etc/hosts, which a notebook cannot edit.
    """
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in names:
            return real(host, port, family, type, proto, flags)
        results = []
        for address in names[name]:
            try:
                results += real(address, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            except socket.gaierror:
                continue  # another family than the one asked for
        if not results:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return results

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


def _bind_pair(listen: bool, backlog: int = 8, attempts: int = 20):
    """Sockets on 127.0.0.1 and (if available) ::1 with the same port: (sockets, port)."""
    for _ in range(attempts):
        four = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        four.bind(("127.0.0.1", 0))
        port = four.getsockname()[1]
        sockets = [four]
        if ipv6_loopback():
            six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                six.bind(("::1", port))
            except OSError:  # that port is taken on ::1: try another
                six.close()
                four.close()
                continue
            sockets.append(six)
        if listen:
            for sock in sockets:
                sock.listen(backlog)
        return sockets, port
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


# --- situations the notebook sets up -----------------------------------------------------


class Ipv4OnlyServer:
    """A server socket listening on 127.0.0.1 only, as the tutorial's; ``.port``, ``.close()``.

    On ::1 the same port is held by a socket that does not listen (when this machine has
    IPv6), so a connect to [::1]:port is refused, never answered by another program.
    """

    def __init__(self):
        self.sockets, self.port = _bind_pair(listen=False)
        self.sockets[0].listen(8)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@contextlib.contextmanager
def refusing_port():
    """A port where connects to 127.0.0.1 and ::1 are refused: both bound here, neither
    listening (so no other program can listen there meanwhile)."""
    sockets, port = _bind_pair(listen=False)
    try:
        yield port
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def unanswered_on_ipv6():
    """A port where 127.0.0.1 listens and ::1's queue is full: on Linux a connect to ::1
    gets no answer at all (its SYN is dropped), as with a host that vanished."""
    sockets, port = _bind_pair(listen=False)
    four, six = sockets  # needs ::1: call it only when ipv6_loopback() is True
    fillers = []
    try:
        four.listen(8)
        six.listen(0)
        for _ in range(4):
            filler = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            fillers.append(filler)
            filler.settimeout(0.3)
            try:
                filler.connect(("::1", port))
            except TimeoutError:
                break  # the queue is full now
        yield port
    finally:
        for sock in fillers + sockets:
            sock.close()


# --- Exercise 1: format_endpoint -------------------------------------------------------------

HINT_BRACKETS = (
    "An IPv6 address has colons of its own: '::1:5000' could be the address ::1:5000. Put it "
    "in brackets, '[::1]:5000' (the notation of URLs, RFC 3986, and RFC 5952 §6)."
)
HINT_TUPLE = (
    "IPv4 addresses are (host, port) pairs, IPv6 ones (host, port, flowinfo, scope_id): "
    "take addr[0] and addr[1], whatever the length."
)
HINT_MAPPED = (
    "'::ffff:127.0.0.1' is an IPv4 client seen through an IPv6 socket (an IPv4-mapped "
    "address, RFC 4291 §2.5.5.2). ipaddress.ip_address(host).ipv4_mapped gives the IPv4 "
    "address (None for other addresses): show that one, without brackets."
)
HINT_SCOPE = (
    "A link-local address (fe80::...) means something only on one interface: the 4th item, "
    "scope_id, says which. Write it after a '%' inside the brackets: '[fe80::1%2]:5000'. A "
    "host that already contains '%' keeps it as it is."
)

ENDPOINT_CASES = [
    # (address tuple, expected text, hint when wrong)
    (("127.0.0.1", 5000), "127.0.0.1:5000", HINT_TUPLE),
    (("192.0.2.7", 80), "192.0.2.7:80", HINT_TUPLE),
    (("::1", 5000, 0, 0), "[::1]:5000", HINT_BRACKETS),
    (("2001:db8::42", 443, 0, 0), "[2001:db8::42]:443", HINT_BRACKETS),
    (("::", 8080, 0, 0), "[::]:8080", HINT_BRACKETS),
    (("::ffff:127.0.0.1", 40001, 0, 0), "127.0.0.1:40001", HINT_MAPPED),
    (("fe80::1", 5000, 0, 2), "[fe80::1%2]:5000", HINT_SCOPE),
    (("fe80::1%eth0", 5000, 0, 2), "[fe80::1%eth0]:5000", HINT_SCOPE),
    (("::1", 5000, 7, 0), "[::1]:5000", HINT_TUPLE),
]


HINT_SCOPE_ZERO = (
    "A scope_id of 0 means no particular interface: write '%' and the scope id only when it "
    "is not 0. ('::1', 5000, 0, 0) is '[::1]:5000'; ('fe80::1', 5000, 0, 2) is "
    "'[fe80::1%2]:5000'."
)
HINT_FLOWINFO = (
    "The 3rd item of an IPv6 address tuple is flowinfo, not the scope: the scope id is the "
    "4th, addr[3], and flowinfo is not part of the text."
)
HINT_NO_BRACKETS = (
    "Only IPv6 addresses go in brackets (their colons would be confused with the port's): "
    "an IPv4 address is written as it is, '127.0.0.1:5000'."
)
HINT_STR = "Return the text, a str such as '[::1]:5000' (print() shows it, but returns None)."
HINT_PURE_HANG = (
    "It needs no network, no sleep and no input: does a loop never end (a `while` whose "
    "condition stays true), or does it wait (input(), time.sleep(), a socket call)?"
)


def _in_c_call(thread) -> bool:
    """Whether ``thread`` is (as far as one can see) inside a call of C code, such as a
    sleep or a blocking socket call, rather than running Python bytecode."""
    frame = sys._current_frames().get(thread.ident)
    if frame is None:
        return True  # cannot tell: assume the worst
    for instruction in dis.get_instructions(frame.f_code):
        if instruction.offset == frame.f_lasti:
            return instruction.opname.startswith(("CALL", "PRECALL"))
    return True


def _end_overrun(watched: WatchedCall, port: int = 0) -> None:
    """End a learner's function that overran: wake its socket calls (a shutdown aborts even
    a connect() in progress), then, if it still runs Python code, raise an exception in its
    thread (``WatchedCall.end``).

    A thread that stays in C code (a long sleep) is left alone: an exception sent to it
    would stay pending, and until that thread runs again, CPython keeps every profiled
    thread (every WatchedCall, in any check) busy with it.
    """
    for sock in list(watched.sockets.values()):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    thread = watched.thread
    if thread is None:
        return
    thread.join(0.2)
    if thread.is_alive() and not _in_c_call(thread):
        watched.end(port)


def _call_pure(func, *args, timeout: float = CALL_TIMEOUT):
    """``call_bounded`` for a function that needs no socket: one that overruns in a Python
    loop is ended instead of running on in the background."""
    watched = WatchedCall(func)
    return call_bounded(watched, *args, timeout=timeout, on_timeout=lambda: _end_overrun(watched))


def _shown(value) -> str:
    """A learner's result for a verdict: a str as its repr, anything else described."""
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return describe_value(value)


def _endpoint_hint(address, result, expected: str, hint: str) -> str:
    """The hint for a wrong ``format_endpoint`` result: what the text itself shows first
    (an extra '%', missing brackets), then the case's own hint."""
    if result is None:
        return HINT_RETURNED_NONE
    if not isinstance(result, str):
        return HINT_STR
    scope = address[3] if len(address) == 4 else None
    flowinfo = address[2] if len(address) == 4 else None
    if flowinfo and f"%{flowinfo}" in result and "%" not in expected:
        return HINT_FLOWINFO
    if "%" in result and "%" not in expected:
        return HINT_SCOPE_ZERO if scope == 0 else HINT_SCOPE
    if result.count("%") > expected.count("%"):
        return HINT_SCOPE  # the zone written twice
    if expected.startswith("[") and not result.startswith("["):
        return HINT_BRACKETS
    if not expected.startswith("[") and result.startswith("["):
        return HINT_MAPPED if address[0].startswith("::ffff:") else HINT_NO_BRACKETS
    if "%" in expected and "%" not in result:
        return HINT_SCOPE
    return hint


def check_format_endpoint(format_endpoint) -> object:
    """``format_endpoint(addr) -> str`` on IPv4, IPv6, mapped and scoped address tuples."""

    def case(address, expected, hint):
        def check():
            call = _call_pure(format_endpoint, address)
            sent = f"format_endpoint({address!r})"
            if not call.finished:
                raise Failure(f"it had not returned after {CALL_TIMEOUT:g} s", HINT_PURE_HANG, sent)
            if call.error is not None:
                unpacking = isinstance(call.error, ValueError) and "unpack" in str(call.error)
                raise Failure(
                    f"it raised {describe_exception(call.error)}",
                    HINT_TUPLE if unpacking else hint,
                    sent,
                )
            if call.result != expected:
                raise Failure(
                    f"it returned {_shown(call.result)}, expected {expected!r}",
                    _endpoint_hint(address, call.result, expected, hint),
                    sent,
                )

        return check

    titles = [
        "IPv4: 127.0.0.1:5000",
        "IPv4: another address and port",
        "IPv6 in brackets: [::1]:5000",
        "IPv6: a global address",
        "IPv6: the wildcard ::",
        "IPv4-mapped: shown as the IPv4 client it is",
        "link-local with a scope id: [fe80::1%2]:5000",
        "a host that names its zone already",
        "flowinfo is not part of the text",
    ]
    return run_checks(
        "format_endpoint(addr)",
        [(title, case(*c)) for title, c in zip(titles, ENDPOINT_CASES, strict=True)],
    )


# --- Exercise 2: connect_any ---------------------------------------------------------------

HINT_FAMILY = (
    "Create each socket with what getaddrinfo returned for that address: "
    "`for family, type_, proto, _, sockaddr in socket.getaddrinfo(host, port, "
    "type=socket.SOCK_STREAM): s = socket.socket(family, type_, proto)`; an IPv4 socket "
    "cannot connect to ::1."
)
HINT_CATCH = (
    "A failed attempt is not the end: catch OSError (ConnectionRefusedError, TimeoutError, "
    "...) around both socket() and connect() (creating an IPv6 socket fails where IPv6 is "
    "off), close that socket, remember (sockaddr, exception), and try the next address."
)
HINT_ORDER = (
    "Try the addresses in the order getaddrinfo returns them, every one until one works: the "
    "order is the system's choice (RFC 6724), and the check's name lists ::1 first."
)
HINT_RESULT = (
    "Return a pair: (the connected socket, [(sockaddr, exception), ...] for every address "
    "that failed before it), or (None, failures) when none worked."
)
HINT_HIDDEN = (
    "::1 comes first in this name's answer: try the addresses in the order getaddrinfo returns "
    "them, and record (sockaddr, exception) for each one that fails. "
    "(socket.create_connection() tries them all but keeps its failures to itself: write the "
    "loop yourself.)"
)
HINT_TIMEOUT = (
    "Set the timeout on each socket before connect(): s.settimeout(timeout). Without it, "
    "an address that never answers keeps connect() waiting for minutes."
)


HINT_RAISE_ALL = (
    "When no address works, return (None, failures) instead of raising: the list says what "
    "went wrong with each address, and the caller decides what to do about it."
)
HINT_ENDLESS = (
    "Every address here answers at once (it connects or it refuses), yet your function had "
    "not returned: try each address once, in getaddrinfo's order, and return as soon as one "
    "connects, or (None, failures) after the last. Do not start over, retry or sleep."
)
HINT_ENDLESS_TIMEOUT = (
    "Each attempt had its timeout, yet your function had not returned long after it: try "
    "each address once, and return (None, failures) after the last. Do not start over, "
    "retry or sleep."
)
HINT_SOCKADDR = (
    "Record the whole sockaddr that getaddrinfo gave for the address, not a part of it: "
    "failures.append((sockaddr, exc)), with sockaddr as in `for family, type_, proto, _, "
    "sockaddr in socket.getaddrinfo(...)`: ('::1', port, 0, 0) for IPv6, ('127.0.0.1', port) "
    "for IPv4."
)
HINT_EXCEPTION_ITEM = (
    "Record the exception itself, the object that `except OSError as exc:` gives: "
    "failures.append((sockaddr, exc)), not its message or its type."
)


def _hide_port(text: str, port: int) -> str:
    """``text`` without the port number (a verdict is the same on every run)."""
    return re.sub(rf"(?<!Errno )\b{port}\b", "PORT", text)


def _raised_on_purpose(error: BaseException, function) -> bool:
    """Whether ``error`` came from a `raise` statement in the learner's own code (rather than
    from a socket call whose error was not caught)."""
    code = getattr(function, "__code__", None)
    tb = error.__traceback__
    if code is None or tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename
    if filename != code.co_filename:
        return False
    return linecache.getline(filename, tb.tb_lineno).strip().startswith("raise")


def _hang_hint(watched: WatchedCall, slow: bool) -> str:
    """Why ``connect_any`` had not returned: a connect() without a timeout where an address
    never answers (``slow``), or else a loop that never ends."""
    if not slow:
        return HINT_ENDLESS
    sockets = list(watched.sockets.values())
    if any(sock.gettimeout() is None for sock in sockets):
        return HINT_TIMEOUT
    return HINT_ENDLESS_TIMEOUT if sockets else HINT_ENDLESS


def _check_failure_item(item, port: int, sent: str) -> None:
    """A failure must be (sockaddr, exception); say which part is not."""
    if not (isinstance(item, tuple | list) and len(item) == 2):
        shown = _hide_port(describe_value(item), port)
        raise Failure(f"a failure is {shown}, not a pair (sockaddr, exception)", HINT_RESULT, sent)
    address, exc = item
    if not isinstance(address, tuple):
        shown = _hide_port(describe_value(address), port)
        raise Failure(
            f"the first item of a failure is {shown}, not the sockaddr tuple", HINT_SOCKADDR, sent
        )
    if not isinstance(exc, BaseException):
        shown = _hide_port(describe_value(exc), port)
        raise Failure(
            f"the second item of a failure is {shown}, not the exception",
            HINT_EXCEPTION_ITEM,
            sent,
        )


def _call_connect_any(
    connect_any, host, port, timeout, sent, addresses, bound=CALL_TIMEOUT, slow=False
):
    """Call the learner's ``connect_any``; its result, or a Failure that says why not.

    ``addresses`` is how many addresses the name has; ``slow`` says that one of them never
    answers (else each connects or refuses at once, and a call that does not return is
    a loop that never ends, not a missing timeout).
    """
    watched = WatchedCall(connect_any)
    call = call_bounded(
        watched, host, port, timeout, timeout=bound, on_timeout=lambda: _end_overrun(watched, port)
    )
    if not call.finished:
        hint = _hang_hint(watched, slow)
        watched.close_all()
        raise Failure(f"it had not returned after {bound:g} s", hint, sent)
    tried = len(watched.sockets)
    watched.sockets.clear()  # the check looks for sockets left unclosed: hold none
    if call.error is not None:
        error = call.error
        what = f"it raised {_hide_port(describe_exception(error), port)}"
        if len(what) > 110:
            what = what[:107] + "..."
        if _raised_on_purpose(error, connect_any) and tried >= addresses:
            what += " (after trying every address)"
            hint = HINT_RAISE_ALL
        elif isinstance(error, TypeError) and "address must be" in str(error):
            hint = HINT_FAMILY
        elif isinstance(error, OSError):
            hint = HINT_CATCH
        else:
            hint = HINT_RESULT
        raise Failure(what, hint, sent)
    result = call.result
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], list)):
        if isinstance(result, socket.socket):
            result.close()
            raise Failure("it returned a socket alone", HINT_RESULT, sent)
        raise Failure(f"it returned a {type(result).__name__}", HINT_RESULT, sent)
    sock, failures = result
    if sock is not None and not isinstance(sock, socket.socket):
        shown = _hide_port(repr(sock)[:40], port)
        raise Failure(f"its first item is {shown}, not a socket", HINT_RESULT, sent)
    for item in failures:
        _check_failure_item(item, port, sent)
    return sock, failures


def _peer_host(sock) -> str | None:
    try:
        return sock.getpeername()[0]
    except OSError:
        return None


def check_connect_any(connect_any) -> object:
    """Attack ``connect_any(host, port, timeout) -> (sock | None, failures)``."""
    six = ipv6_loopback()

    def one_address():
        sent = "a name with one address, 127.0.0.1, where a server listens"
        sockets, port = _bind_pair(listen=True)
        try:
            with resolving({"one.test": ["127.0.0.1"]}):
                sock, failures = _call_connect_any(connect_any, "one.test", port, 1, sent, 1)
            if sock is None:
                raise Failure("it returned no socket", HINT_CATCH, sent)
            peer = _peer_host(sock)
            sock.close()
            if peer != "127.0.0.1" or failures:
                raise Failure(f"connected to {peer!r}, {len(failures)} failures", HINT_RESULT, sent)
        finally:
            for s in sockets:
                s.close()

    def ipv6_first_ipv4_server():
        sent = "'dual.test' is ::1 then 127.0.0.1; the server listens on 127.0.0.1 only"
        sockets, port = _bind_pair(listen=False)  # ::1 held too: refused, never a stranger
        try:
            sockets[0].listen(8)
            with resolving({"dual.test": ["::1", "127.0.0.1"]}):
                sock, failures = _call_connect_any(connect_any, "dual.test", port, 1, sent, 2)
            peer = _peer_host(sock) if sock is not None else None  # before the server closes
        finally:
            for s in sockets:
                s.close()
        if sock is None:
            raise Failure(f"it returned no socket ({len(failures)} failures)", HINT_CATCH, sent)
        sock.close()
        if peer != "127.0.0.1":
            raise Failure(f"the socket is connected to {peer!r}", HINT_ORDER, sent)
        hosts = [address[0] for address, _ in failures]
        if not hosts:
            raise Failure("it reached 127.0.0.1 and reported no failure for ::1", HINT_HIDDEN, sent)
        if hosts != ["::1"]:
            raise Failure(f"the failures name {hosts!r}, expected ['::1']", HINT_RESULT, sent)
        if not isinstance(failures[0][1], OSError):
            raise Failure(
                f"the failure of ::1 is {describe_exception(failures[0][1])}", HINT_FAMILY, sent
            )

    def ipv4_refused_ipv6_works():
        sent = "'v6.test' is 127.0.0.1 then ::1; 127.0.0.1 refuses, ::1 listens"
        sockets, port = _bind_pair(listen=False)
        try:
            sockets[1].listen(8)  # ::1 listens, 127.0.0.1 is bound only: refused
            with resolving({"v6.test": ["127.0.0.1", "::1"]}):
                sock, failures = _call_connect_any(connect_any, "v6.test", port, 1, sent, 2)
            peer = _peer_host(sock) if sock is not None else None  # before the server closes
        finally:
            for s in sockets:
                s.close()
        if sock is None:
            raise Failure("it returned no socket", HINT_FAMILY, sent)
        sock.close()
        if peer != "::1" or [a[0] for a, _ in failures] != ["127.0.0.1"]:
            raise Failure(f"connected to {peer!r}", HINT_ORDER, sent)

    def all_refused():
        sent = "'none.test' is ::1 then 127.0.0.1; nothing listens on either"
        sockets, port = _bind_pair(listen=False)
        gc.collect()  # sockets left unclosed before this check are not this check's business
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResourceWarning)
                with resolving({"none.test": ["::1", "127.0.0.1"]}):
                    sock, failures = _call_connect_any(connect_any, "none.test", port, 1, sent, 2)
                gc.collect()
        finally:
            for s in sockets:
                s.close()
        if sock is not None:
            sock.close()
            raise Failure("it returned a socket, but nothing listened", HINT_RESULT, sent)
        hosts = [address[0] for address, _ in failures]
        if hosts != ["::1", "127.0.0.1"]:
            raise Failure(
                f"the failures name {hosts!r}, expected ['::1', '127.0.0.1']", HINT_ORDER, sent
            )
        if any(issubclass(w.category, ResourceWarning) for w in caught):
            raise Failure(
                "Python warned: ResourceWarning: unclosed socket",
                "Close the socket of every failed attempt before you try the next address.",
                sent,
            )

    def timeout_each():
        sent = (
            "'slow.test' is 127.0.0.1, where a full queue leaves connect() unanswered; timeout 0.5"
        )
        with full_backlog() as port, resolving({"slow.test": ["127.0.0.1"]}):
            start = time.monotonic()
            sock, failures = _call_connect_any(
                connect_any, "slow.test", port, 0.5, sent, 1, slow=True
            )
            took = time.monotonic() - start
        if sock is not None:
            sock.close()
            raise Failure("it returned a socket", HINT_RESULT, sent)
        if took > 2.5 or len(failures) != 1 or not isinstance(failures[0][1], TimeoutError):
            what = (
                f"it failed with {describe_exception(failures[0][1])}"
                if len(failures) == 1
                else f"it reported {len(failures)} failures"
            )
            raise Failure(what, HINT_TIMEOUT, sent)

    checks = [("a name with one address", one_address)]
    if six:
        checks += [
            (
                "::1 first, the server on 127.0.0.1 only: it reaches 127.0.0.1",
                ipv6_first_ipv4_server,
            ),
            ("127.0.0.1 refused, ::1 listens: it reaches ::1", ipv4_refused_ipv6_works),
        ]
    else:
        checks += [
            (
                "::1 first, the server on 127.0.0.1 only (this machine has no IPv6 loopback: "
                "::1 fails at once)",
                ipv6_first_ipv4_server,
            )
        ]
    checks += [
        ("nothing listens: (None, both failures), every socket closed", all_refused),
        ("a timeout for each attempt", timeout_each),
    ]
    return run_checks("connect_any(host, port, timeout)", checks)


# --- Exercise 3: loopback_echo_server ------------------------------------------------------

HINT_WILDCARD = (
    "A socket bound to '::' (or '' or '0.0.0.0') listens on every interface: other computers "
    "can connect. To stay on loopback with both families, open two listening sockets, one "
    "bound to ('127.0.0.1', port) and one to ('::1', port), and wait on both at once "
    "(selectors, or a thread for each)."
)
HINT_BOTH = (
    "Wait on both listening sockets at once: a selectors.DefaultSelector with both registered "
    "for EVENT_READ, then accept() on the one that is ready (or a thread per socket). An "
    "accept() on one socket blocks while clients wait on the other."
)
HINT_V6 = (
    "Nothing answered on [::1]:port. Create a second socket with socket.socket("
    "socket.AF_INET6), bind(('::1', port)) and listen() on it too."
)
HINT_ECHO = "Send back every byte you receive, until recv() returns b'', then close."
HINT_ONE_RECV = (
    "One recv() returns what has arrived so far, not a whole message: a client may send "
    "more later. Keep reading and sending back in a loop (`while data := conn.recv(4096): "
    "conn.sendall(data)`) until recv() returns b'', and close only then."
)
HINT_AT_ONCE = (
    "Send back each piece as soon as you receive it, before you read on: a client may wait "
    "for the echo of what it sent before it sends more (or closes)."
)
HINT_RETURNED = (
    "A server serves client after client: its function must not return. Keep select() (or "
    "accept()) in a `while True:` loop, and leave out any `return` or `break` after a client."
)
HINT_AF_INET6 = (
    "('::1', port) is an IPv6 address, but that socket was made for IPv4: socket.socket() and "
    "socket.create_server() make AF_INET sockets unless told otherwise. Create it with "
    "socket.create_server(('::1', port), family=socket.AF_INET6) (or "
    "socket.socket(socket.AF_INET6, socket.SOCK_STREAM), then bind)."
)


def _finished(server) -> bool:
    """The learner's server function has returned, and no thread of it serves on."""
    return not server.running and not server.threads and not server.errors


def _still_serving(server, sent: str) -> None:
    """Fail (with the real cause) when nothing serves the next client any more."""
    server.wait_quiet(REPLY_TIMEOUT, deadlines=False)  # the last client's end has been handled
    if server.errors:
        raise Failure("your server crashed", "", sent)  # _serving() says with what
    if _finished(server):
        raise Failure(
            "your server function had returned: nothing served this client", HINT_RETURNED, sent
        )
    if not still_listens(server):
        raise Failure("your server no longer listened", HINT_BOTH, sent)


def _client(server, host: str, sent: str) -> socket.socket:
    """A client connected to the learner's server on ``host`` (a timeout on everything)."""
    _still_serving(server, sent)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = socket.socket(family, socket.SOCK_STREAM)
    client.settimeout(REPLY_TIMEOUT)
    try:
        client.connect((host, server.port))
    except ConnectionRefusedError:
        client.close()
        raise Failure(
            f"the connection to {host} was refused",
            HINT_V6 if family == socket.AF_INET6 else "Listen on ('127.0.0.1', port).",
            sent,
        ) from None
    except TimeoutError:
        client.close()
        raise Failure("connecting timed out", HINT_BOTH, sent) from None
    except OSError:
        client.close()
        raise
    return client


def _judge_echo(server, data: bytes, how: str, message: bytes, sent: str, mismatch=HINT_ECHO):
    if data == message and how == "eof":
        return
    if data == message:
        raise Failure("the echo came, but the connection stayed open", HINT_ECHO, sent)
    server.wait_quiet(1.0, deadlines=False)
    if server.errors:
        raise Failure(f"got {show_bytes(data)}, expected {show_bytes(message)}", "", sent)
    if _finished(server):
        raise Failure(
            f"got {show_bytes(data)}, expected {show_bytes(message)}: your server function "
            "returned",
            HINT_RETURNED,
            sent,
        )
    if not data and how == "timeout":
        raise Failure(f"no reply within {REPLY_TIMEOUT:g} s", HINT_BOTH, sent)
    raise Failure(f"got {show_bytes(data)}, expected {show_bytes(message)}", mismatch, sent)


def _echo_once(server, host: str, message: bytes, sent: str) -> None:
    with _client(server, host, sent) as client:
        client.sendall(message)
        client.shutdown(socket.SHUT_WR)
        data, how = read_to_eof(client, server)
    _judge_echo(server, data, how, message, sent)


def _echo_in_two_parts(server, first: bytes, second: bytes, sent: str) -> None:
    """Send ``first``; only once its echo is back, ``second``; then expect both and the end."""
    with _client(server, "127.0.0.1", sent) as client:
        client.sendall(first)
        data, how = read_reply(client, server, lambda d: len(d) >= len(first))
        if data != first:
            if not data and how == "timeout":
                raise Failure(
                    f"{show_bytes(first)} did not come back within {REPLY_TIMEOUT:g} s, while "
                    "the client waited for it before sending more",
                    HINT_AT_ONCE,
                    sent,
                )
            _judge_echo(server, data, how, first, sent)
        server.wait_quiet(1.0)  # the server has done what it does after the first part
        try:
            client.sendall(second)
            client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed already: what the client reads says so
        rest, how = read_to_eof(client, server)
    if not rest and how in ("eof", "reset"):
        raise Failure(
            f"after echoing {show_bytes(first)} your server closed the connection: "
            f"{show_bytes(second)} never came back",
            HINT_ONE_RECV,
            sent,
        )
    _judge_echo(server, first + rest, how, first + second, sent, HINT_ONE_RECV)


def _listening_hosts(port: int) -> list[str]:
    here = psutil.Process()
    return sorted(
        c.laddr.ip
        for c in here.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    )


def _crash_hints(exc: BaseException) -> str | None:
    dualstack = isinstance(exc, ValueError) and "dualstack" in str(exc)  # create_server's
    if (isinstance(exc, OSError) or dualstack) and not ipv6_loopback():
        return (
            "This machine has no IPv6 loopback: binding ::1 fails here. Serve 127.0.0.1 alone "
            "when socket.socket(AF_INET6) or bind(('::1', port)) raises OSError."
        )
    lookup_codes = {getattr(socket, n) for n in dir(socket) if n.startswith("EAI_")}
    if isinstance(exc, socket.gaierror) or (
        isinstance(exc, OSError) and exc.errno in lookup_codes and "::1" in str(exc)
    ):
        return HINT_AF_INET6  # bind(('::1', port)) on an AF_INET socket: a lookup error
    return None


@contextlib.contextmanager
def _serving(server_func):
    """``serving()``, with a crash put first: a server that crashed is the cause of whatever
    its client saw (and the verdict shows no port)."""
    started = []
    try:
        with serving(server_func, _crash_hints) as server:
            started.append(server)
            yield server
    except Failure as failure:
        errors = started[0].errors if started else []
        if errors and failure.hint != HINT_EOF_SPIN:
            crash = errors[0]
            what = _hide_port(
                f"your server crashed with {describe_exception(crash)}", started[0].port
            )
            hint = _crash_hints(crash) or (
                "Read the exception: your server must keep running, client after client."
            )
            raise Failure(what, hint, failure.sent) from None
        if started:
            failure.what = _hide_port(failure.what, started[0].port)
        raise


def check_loopback_echo_server(loopback_echo_server) -> object:
    """Attack ``loopback_echo_server(port)``: echo on 127.0.0.1 and ::1, loopback only."""
    six = ipv6_loopback()

    def on(host, title_sent):
        def check():
            with _serving(loopback_echo_server) as server:
                _echo_once(server, host, b"hello over " + host.encode() + b"\n", title_sent)

        return check

    def loopback_only():
        sent = "where the server listens (read from the operating system)"
        with _serving(loopback_echo_server) as server:
            hosts = _listening_hosts(server.port)
        wild = [h for h in hosts if h not in ("127.0.0.1", "::1")]
        if wild:
            raise Failure(
                f"it listens on {wild[0]!r}: every network interface", HINT_WILDCARD, sent
            )

    def any_order():
        order = ["::1", "::1", "127.0.0.1", "::1", "127.0.0.1", "127.0.0.1"]
        with _serving(loopback_echo_server) as server:
            for index, host in enumerate(order, 1):
                sent = f"six clients one after another, on {', '.join(order)}: client {index}"
                _echo_once(server, host, f"client {index}\n".encode(), sent)

    def two_parts():
        sent = (
            "b'first part, ' on 127.0.0.1; once it came back, b'second part\\n', then the "
            "client shut down its sending side"
        )
        with _serving(loopback_echo_server) as server:
            _echo_in_two_parts(server, b"first part, ", b"second part\n", sent)

    two_parts_title = "a message in two parts, the second sent once the first came back"
    if six:
        checks = [
            ("echoes a client on 127.0.0.1", on("127.0.0.1", "a client on 127.0.0.1")),
            ("echoes a client on ::1", on("::1", "a client on [::1]")),
            (two_parts_title, two_parts),
            ("listens on 127.0.0.1 and ::1 only", loopback_only),
            ("clients on either address, in any order", any_order),
        ]
    else:
        checks = [
            (
                "echoes a client on 127.0.0.1 (this machine has no IPv6 loopback: ::1 is "
                "not checked)",
                on("127.0.0.1", "a client on 127.0.0.1"),
            ),
            (two_parts_title, two_parts),
            ("listens on loopback only", loopback_only),
        ]
    return run_checks("loopback_echo_server(port)", checks)


# --- Exercise 4: lookup_problem ------------------------------------------------------------

NO_SUCH_NAME = "no such name"
TRY_AGAIN = "try again later"
BAD_SERVICE = "unknown service"
NOT_A_LOOKUP = "not a lookup error"

HINT_GAIERROR = (
    "Name resolution fails with socket.gaierror, and its .errno is one of the socket.EAI_* "
    "constants: compare with those (their numbers differ between Linux, macOS and Windows)."
)
HINT_NONAME = (
    "EAI_NONAME ('Name or service not known') is 'no such name': a resolver answered that "
    "the name does not exist (or, with AI_NUMERICHOST, a name came where a number was "
    "required). Compare exc.errno with socket.EAI_NONAME."
)
HINT_SERVICE = (
    "EAI_SERVICE ('Servname not supported for ai_socktype') is 'unknown service': the "
    "service, a port given by name (here 'no-such-service'), is not in /etc/services. "
    "Compare exc.errno with socket.EAI_SERVICE."
)
HINT_NODATA = (
    "EAI_NODATA ('No address associated with hostname': the name exists, without an address "
    "of that family) is 'no such name' too; hasattr(socket, 'EAI_NODATA') first: Windows "
    "and macOS may not define it."
)
HINT_AGAIN = (
    "EAI_AGAIN is 'Temporary failure in name resolution': no DNS server answered (no "
    "network?). The name may well exist: try again later."
)
HINT_OTHER_CODE = (
    "A gaierror whose code is not one of the listed ones gets 'not a lookup error', as the "
    'exercise says: after your comparisons, end with `return "not a lookup error"` (a '
    "function that reaches its end returns None)."
)
HINT_OTHER_CODE_MEANING = (
    "Only the listed codes have a meaning of their own: EAI_NONAME and EAI_NODATA are 'no "
    "such name', EAI_AGAIN 'try again later', EAI_SERVICE 'unknown service'. Compare "
    "exc.errno with each of those socket.EAI_* constants; any other code is 'not a lookup "
    "error'."
)
HINT_NOT_GAI = (
    "Only a socket.gaierror is a lookup error. ConnectionRefusedError and TimeoutError come "
    "after the lookup, from connect(). Check isinstance(exc, socket.gaierror) first."
)
HINT_NOT_OSERROR = (
    "Not every exception is an OSError with an .errno: a name too long to encode raises "
    "UnicodeError, a port above 65535 OverflowError. Check isinstance(exc, socket.gaierror) "
    "first, and return 'not a lookup error' for anything else."
)
HINT_MESSAGE = (
    "Compare exc.errno with the socket.EAI_* constants, not the message: the text differs "
    "between systems (glibc says 'Name or service not known', macOS 'nodename nor servname "
    "provided, or not known', Windows 'getaddrinfo failed')."
)
HINT_NUMBERS = (
    "Compare with the socket.EAI_* constants, not with numbers: -2 is EAI_NONAME with "
    "glibc (Linux) only; it is 8 on macOS and 11001 on Windows. Write "
    "`exc.errno == socket.EAI_NONAME`, and so on."
)

# Messages of getaddrinfo's failures (glibc, macOS, Windows): a function that answers one
# of them differently from another, for the same code, reads the message.
_MESSAGES = [
    "",
    "Name or service not known",
    "No address associated with hostname",
    "Temporary failure in name resolution",
    "Servname not supported for ai_socktype",
    "Non-recoverable failure in name resolution",
    "nodename nor servname provided, or not known",
    "temporary failure in name resolution",
    "getaddrinfo failed",
]
# The codes of glibc (as Linux numbers them), and this platform's.
_GLIBC_CODES = set(range(-12, 0))
_CODES = {getattr(socket, name) for name in dir(socket) if name.startswith("EAI_")}
_LISTED = {
    getattr(socket, name, None) for name in ("EAI_NONAME", "EAI_NODATA", "EAI_AGAIN", "EAI_SERVICE")
} - {None}


def _real_failure(host, port, **options) -> socket.gaierror | None:
    """The gaierror that this lookup raises here (numeric or local: no DNS), or None."""
    try:
        socket.getaddrinfo(host, port, **options)
    except socket.gaierror as exc:
        return exc
    except (OSError, ValueError, OverflowError):
        return None
    return None


def _lookup_cases():
    """(title, exception, expected, hint): real failures of this machine, and built ones
    for what this machine cannot show (no network), worded as glibc or macOS words them."""
    cases = []
    exc = _real_failure("www.example.com", 80, flags=socket.AI_NUMERICHOST)
    if exc is not None and exc.errno == socket.EAI_NONAME:
        cases.append(
            ("a name where a number was required (AI_NUMERICHOST)", exc, NO_SUCH_NAME, HINT_NONAME)
        )
    exc = _real_failure("127.0.0.1", "no-such-service", type=socket.SOCK_STREAM)
    if exc is not None and exc.errno == socket.EAI_SERVICE:
        cases.append(
            ("a service name that /etc/services does not know", exc, BAD_SERVICE, HINT_SERVICE)
        )
    cases.append(
        (
            "no DNS server answered (built: EAI_AGAIN)",
            socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
            TRY_AGAIN,
            HINT_AGAIN,
        )
    )
    cases.append(
        (
            "no such name (built: EAI_NONAME)",
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            NO_SUCH_NAME,
            HINT_NONAME,
        )
    )
    cases.append(
        (
            "no such name, worded as macOS words it (built: EAI_NONAME)",
            socket.gaierror(socket.EAI_NONAME, "nodename nor servname provided, or not known"),
            NO_SUCH_NAME,
            HINT_MESSAGE,
        )
    )
    if hasattr(socket, "EAI_NODATA"):
        cases.append(
            (
                "the name has no address (built: EAI_NODATA)",
                socket.gaierror(socket.EAI_NODATA, "No address associated with hostname"),
                NO_SUCH_NAME,
                HINT_NODATA,
            )
        )
    exc = _real_failure("127.0.0.1", 80, family=12345)  # no such address family
    if exc is not None and exc.errno not in _LISTED:
        cases.append(
            (
                f"another code: a family getaddrinfo does not know ({_eai_name(exc.errno)})",
                exc,
                NOT_A_LOOKUP,
                HINT_OTHER_CODE,
            )
        )
    if hasattr(socket, "EAI_FAIL"):
        cases.append(
            (
                "another code: the DNS server failed (built: EAI_FAIL)",
                socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure in name resolution"),
                NOT_A_LOOKUP,
                HINT_OTHER_CODE,
            )
        )
    cases.append(
        (
            "ConnectionRefusedError (a connect error, not a lookup error)",
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            NOT_A_LOOKUP,
            HINT_NOT_GAI,
        )
    )
    cases.append(
        ("TimeoutError from connect()", TimeoutError("timed out"), NOT_A_LOOKUP, HINT_NOT_GAI)
    )
    try:
        ("a" * 64 + ".test").encode("idna")  # getaddrinfo's first step: no lookup at all
    except UnicodeError as exc:
        too_long = exc
    else:  # pragma: no cover - every Python refuses a label longer than 63
        too_long = UnicodeError("label empty or too long")
    cases.append(
        (
            "UnicodeError: a name too long to encode (not an OSError)",
            too_long,
            NOT_A_LOOKUP,
            HINT_NOT_OSERROR,
        )
    )
    too_big = OverflowError("connect(): port must be 0-65535.")
    with socket.socket() as unused:
        unused.settimeout(0.5)
        try:
            unused.connect(("127.0.0.1", 70000))  # refused before any packet: no such port
        except OverflowError as exc:
            too_big = exc
        except OSError:
            pass
    cases.append(
        (
            "OverflowError: a port above 65535 (not an OSError)",
            too_big,
            NOT_A_LOOKUP,
            HINT_NOT_OSERROR,
        )
    )
    return cases


def _eai_name(number) -> str:
    """The socket.EAI_* name of a gaierror's number (numbers differ by platform)."""
    names = [n for n in dir(socket) if n.startswith("EAI_") and getattr(socket, n) == number]
    return sorted(names)[0] if names else "an unknown code"


def _literal_codes(function) -> list[int]:
    """The getaddrinfo codes that ``function``'s source compares with as numbers
    (``exc.errno == -2``, ``exc.errno in (-2, -5)``, ``{-2: ...}``, ``case -2:``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError, ValueError):
        return []  # no source to read (or only a part of a line): behaviour decides
    codes = _CODES | _GLIBC_CODES

    def ints(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            yield node.value
        elif (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int
        ):
            yield -node.operand.value
        elif isinstance(node, ast.Tuple | ast.List | ast.Set):
            for element in node.elts:
                yield from ints(element)

    def mentions_errno(node) -> bool:
        return any(
            (isinstance(n, ast.Attribute) and n.attr in ("errno", "args"))
            or (isinstance(n, ast.Name) and n.id in ("errno", "code"))
            for n in ast.walk(node)
        )

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(mentions_errno(side) for side in sides):
                found += [v for side in sides for v in ints(side) if v in codes]
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]
            values = [v for k in keys for v in ints(k)]
            if keys and len(values) == len(keys) and all(v in codes for v in values):
                found += values
        elif isinstance(node, ast.Match) and mentions_errno(node.subject):
            for case in node.cases:
                for n in ast.walk(case.pattern):
                    if isinstance(n, ast.MatchValue):
                        found += [v for v in ints(n.value) if v in codes]
    return found


def _reads_message(lookup_problem, exc: socket.gaierror, expected: str) -> bool:
    """Whether the function gives the expected answer for the same code with another
    message: then it looked at the text, not at exc.errno."""
    for message in _MESSAGES:
        if message == exc.strerror:
            continue
        call = call_bounded(lookup_problem, socket.gaierror(exc.errno, message), timeout=0.5)
        if call.finished and call.error is None and call.result == expected:
            return True
    return False


def _hint_for(lookup_problem, exc, expected, hint, result=None, raised=None) -> str:
    """The hint for a wrong answer (or an exception) to ``exc``: numbers written in the
    code, a message compared instead of the code, a missing last return; else the case's."""
    if _literal_codes(lookup_problem):
        return HINT_NUMBERS
    if isinstance(exc, socket.gaierror) and _reads_message(lookup_problem, exc, expected):
        return HINT_MESSAGE
    if hint is HINT_OTHER_CODE and result is not None and raised is None:
        return HINT_OTHER_CODE_MEANING  # it gave the code a meaning of its own
    if hint is HINT_MESSAGE:
        return HINT_GAIERROR  # the same code in glibc's words failed too: not the message
    return hint


def check_lookup_problem(lookup_problem) -> object:
    """Check ``lookup_problem(exc) -> str`` on real and built failures, and its source for
    codes written as numbers."""

    def case(exc, expected, hint):
        def check():
            call = _call_pure(lookup_problem, exc)
            sent = (
                f"socket.gaierror ({_eai_name(exc.errno)})"
                if isinstance(exc, socket.gaierror)
                else type(exc).__name__
            )
            if not call.finished:
                raise Failure(f"it had not returned after {CALL_TIMEOUT:g} s", HINT_PURE_HANG, sent)
            if call.error is not None:
                raise Failure(
                    f"it raised {describe_exception(call.error)}",
                    _hint_for(lookup_problem, exc, expected, hint, raised=call.error),
                    sent,
                )
            if call.result != expected:
                raise Failure(
                    f"it returned {_shown(call.result)}, expected {expected!r}",
                    _hint_for(lookup_problem, exc, expected, hint, result=call.result),
                    sent,
                )

        return check

    def no_numbers():
        found = _literal_codes(lookup_problem)
        if found:
            raise Failure(
                f"your code compares exc.errno with the number {found[0]} "
                f"({_eai_name(found[0]) if found[0] in _CODES else 'a glibc code'})",
                HINT_NUMBERS,
                "the source of your function",
            )

    return run_checks(
        "lookup_problem(exc)",
        [(title, case(exc, expected, hint)) for title, exc, expected, hint in _lookup_cases()]
        + [
            (
                "compares with the socket.EAI_* constants, not numbers (read from your code)",
                no_numbers,
            )
        ],
    )
