"""Exercises of notebook 01, your first server and client: each ``check_<name>(function)``.

    from helpers.exercises import nb01
    nb01.check_hello_server(hello_server)
    nb01.check_fetch(fetch)

``hello_server`` runs with netlab and meets a real client, which reads until the end; a
connection the function left for Python to close shows as the ResourceWarning it causes.
``fetch`` meets a real server of the check's own, run by netlab too, that sends its
greeting in two parts with a pause between them (one recv() is not enough), then closes.
The checks are tables: ``HELLO_CASES`` (title, check, input) and ``FETCH_CASES`` (the two
parts the server sends, and the hint for a wrong result), run by ``_fetch_case``.

A learner's client function is watched from inside its own thread (``_Watched``: the
profiler hook of that thread sees every socket method it calls), so the check knows the
sockets it used, with their timeouts, without searching the whole interpreter; if the
function overruns, closing exactly those sockets ends it (a recv() that spins on b''
then raises), and the server never sees a client it did not expect.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import warnings
from functools import partial

from helpers import netlab

from ._checker import (
    EOF_TIMEOUT,
    Failure,
    NotDone,
    WatchedCall,
    accept_ours,
    call_bounded,
    connect,
    describe_exception,
    read_to_eof,
    run_checks,
    serving,
    show_bytes,
)


def _guarded(checks):
    """``checks`` with each one made safe: an exception that no check expected becomes a
    failure with a hint, so the learner always gets a verdict, never a traceback."""

    def guard(check):
        def guarded():
            try:
                check()
            except (Failure, NotDone):
                raise
            except Exception as exc:  # noqa: BLE001 - reported in the verdict
                raise Failure(
                    f"the check could not go on: {describe_exception(exc)}",
                    "Something unexpected happened while checking your function: run its "
                    "cell again, then this check; if it happens again, read the exception.",
                ) from None

        return guarded

    return [(title, guard(check)) for title, check in checks]


# --- Exercise 1: hello_server ------------------------------------------------------------

GREETING = b"Hello, 127.0.0.1"  # what a client on this machine must receive
GREETINGS = (GREETING, GREETING + b"\n", GREETING + b"\r\n")  # a line end is fine too

HINT_CLOSE = (
    "Close the connection after sending (c.close()): the client reads until the end, "
    "and the end comes only when you close."
)
# A hint's code comes first, so that the verdict's line wrapping never cuts it in two (it
# wraps at spaces, and the greeting has one): copied from the verdict, it still runs.
SEND_GREETING = "c.send(f'Hello, {addr[0]}'.encode())"
HINT_TEXT = (
    f"{SEND_GREETING}: addr[0] is the client's IP; the f-string builds the text, and "
    "encode() turns it into bytes."
)
HINT_ADDR_PAIR = (
    f"{SEND_GREETING}: addr is a pair, (IP, port), and the greeting needs only the IP, addr[0]."
)
HINT_SILENT = (
    "Right after accept(), send the greeting (the client sends nothing, so do not wait "
    "for it with recv()), then close the connection."
)
HINT_ONE_CLIENT = (
    "Serve one client, then return: break out of the loop (or return) after you have "
    "closed the connection."
)
HINT_LOOPBACK = (
    "Bind ('127.0.0.1', port): '' and '0.0.0.0' mean every network interface, so other "
    "computers on your network could connect too."
)


HINT_SEND_ON_LISTENER = (
    "Your send() found no client on its socket: the listening socket s only accepts "
    "connections (Linux reports a send on it as BrokenPipeError). Each client is on the "
    "socket that accept() returns: c, addr = s.accept(), then c.sendall(...)."
)


def _server_crash_hint(exc):
    if isinstance(exc, AttributeError) and "tuple" in str(exc):
        return HINT_ADDR_PAIR
    if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.ENOTCONN:
        return HINT_SEND_ON_LISTENER
    return None


HINT_SEND_BEFORE_CLOSE = (
    f"{SEND_GREETING}, then c.close(): send the greeting before you close the connection."
)
HINT_CLOSE_YOURSELF = (
    "Close the connection yourself, c.close(), once the greeting is sent: a server that "
    "goes on serving would leave it open, and the client waiting."
)
SENT_ONE_CLIENT = "a client connects and reads until the end"
SENT_THEN_RETURN = "a client connects and reads until the end; then the server should return"


def _greeted(server, sent) -> None:
    """A client connects and reads until the end: it must get the greeting, then the end."""
    with connect(server) as sock:
        client_port = sock.getsockname()[1]
        data, how = read_to_eof(sock, server)
    # the client's port changes on every run: the verdict names it, not its number
    shown = show_bytes(data).replace(str(client_port), "<client port>")
    if data in GREETINGS and how == "eof":
        return
    if data in GREETINGS:
        raise Failure("the greeting came, but the connection stayed open", HINT_CLOSE, sent)
    if not data and how == "timeout":
        raise Failure("nothing came while the client waited", HINT_SILENT, sent)
    if not data:
        raise Failure("the connection ended before anything came", HINT_SEND_BEFORE_CLOSE, sent)
    hint = HINT_ADDR_PAIR if str(client_port).encode() in data else HINT_TEXT
    raise Failure(f"the client received {shown}, expected {show_bytes(GREETING)}", hint, sent)


def _one_client(hello_server, sent, seen) -> None:
    with serving(hello_server, _server_crash_hint) as server:
        _greeted(server, sent)


def _loopback_only(hello_server, sent, seen) -> None:
    with serving(hello_server, _server_crash_hint) as server:
        host = server.bound_address[0] if server.bound_address else "127.0.0.1"
        if host != "127.0.0.1":
            raise Failure(f"it listens on {host!r}: every network interface", HINT_LOOPBACK, sent)


def _returns(hello_server, sent, seen) -> None:
    """One client, then the server must return; ``seen["unclosed"]`` says whether Python
    had to close the client's connection (judged by ``_closes_the_connection``)."""
    with warnings.catch_warnings(record=True) as caught:
        # A socket nobody closed is closed by Python when the function that holds it
        # returns, with a warning "unclosed <... raddr=...>": record it for check 4.
        warnings.simplefilter("always", ResourceWarning)
        with serving(hello_server, _server_crash_hint) as server:
            _greeted(server, sent)
            try:
                server.wait(EOF_TIMEOUT)
            except TimeoutError:
                raise Failure(
                    f"your server was still running {EOF_TIMEOUT:g} s after its client "
                    "had gone (waiting in accept() for another one?)",
                    HINT_ONE_CLIENT,
                    sent,
                ) from None
            except netlab.ServerError:
                pass  # it crashed: serving() reports the exception
    mine = f"laddr=('127.0.0.1', {server.port}), raddr="
    seen["unclosed"] = any(
        issubclass(w.category, ResourceWarning) and mine in str(w.message) for w in caught
    )


def _closes_the_connection(hello_server, sent, seen) -> None:
    if seen.get("unclosed"):
        raise Failure(
            "your function returned without closing the client's connection (Python "
            "closed it afterwards, and warned: ResourceWarning: unclosed socket)",
            HINT_CLOSE_YOURSELF,
            sent,
        )


# (what the check shows, what it does, the input as the verdict names it); the fourth
# judges again what the third saw.
HELLO_CASES = [
    (f"a client receives {show_bytes(GREETING)}, then the end", _one_client, SENT_ONE_CLIENT),
    ("listens on 127.0.0.1 only", _loopback_only, "where the server's socket is bound"),
    ("returns after its one client", _returns, SENT_THEN_RETURN),
    ("closes the connection itself", _closes_the_connection, SENT_THEN_RETURN),
]


def check_hello_server(hello_server) -> object:
    """Attack ``hello_server(port)``: one client gets b'Hello, 127.0.0.1', then the end."""
    seen = {}  # what one check saw, judged again by a later one
    checks = [(title, partial(how, hello_server, sent, seen)) for title, how, sent in HELLO_CASES]
    return run_checks("hello_server", _guarded(checks))


# --- Exercise 2: fetch ---------------------------------------------------------------------

FIRST, SECOND = b"Thank you ", b"for connecting"
PAUSE = 1.0  # the check's server sends SECOND this long after FIRST (or once fetch returned)
LINGER = 0.5  # then it waits this long before it closes: a fetch that returns meanwhile
# never saw the end (b''), it only counted the parts
FETCH_TIMEOUT = PAUSE + 3.0  # fetch gets this long in all: 3 s more than the server needs

HINT_EOF = (
    "Once the server has closed, recv() returns b'' at once, every time, so a loop that "
    "does not stop on b'' spins for ever: break out of the loop when recv() returns b'' "
    "(compare with b'', not '')."
)
HINT_ONE_RECV = (
    "One recv() returns what has arrived so far, here only the first part: call recv() "
    "in a loop, collecting the chunks, until it returns b'' (the server closed)."
)
HINT_DECODE = "Return a str: decode() the bytes you received (received.decode())."
HINT_TIMEOUT = (
    "Give the socket a timeout before you read: s.settimeout(5) (or "
    "socket.create_connection(('127.0.0.1', port), timeout=5)). Without one, a server that "
    "never answers keeps fetch waiting in recv() forever."
)


def _fetch_error_hint(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return (
            "Connect to ('127.0.0.1', port), with the port that fetch is given: nothing "
            "listened where your function connected."
        )
    if isinstance(error, TimeoutError):
        return (
            f"The server pauses about {PAUSE:g} s between the two parts, and your timeout "
            "was shorter: give the socket a few seconds, s.settimeout(5), as the client above."
        )
    if isinstance(error, OSError) and error.errno in (errno.EBADF, errno.ENOTSOCK):
        return (
            "Your function used the socket after close(): close it only after the loop, "
            "once recv() has returned b''."
        )
    if isinstance(error, TypeError) and "bytes" in str(error):
        return (
            "recv() returns bytes: collect them in bytes (received = b'', not ''), add each "
            "chunk, and decode() once at the end."
        )
    return "Read the exception: fetch must return everything the server sent, as a str."


HINT_CONNECT = "Connect to ('127.0.0.1', port), with the port that fetch is given."
HINT_RETURN_TEXT = (
    "Return the text: `return received.decode()` (a function without a return statement "
    "returns None)."
)
HINT_STR_OF_BYTES = (
    "str(data) gives the text \"b'...'\", quotes and all: decode the bytes instead, data.decode()."
)
HINT_FIXED_RECVS = (
    "Your function stopped after a fixed number of recv() calls: that number fitted this "
    "server by chance. Call recv() in a loop until it returns b'' (the server closed): only "
    "that says the reply is complete."
)
HINT_COLLECT = (
    "Collect every chunk until recv() returns b'', then return them decoded: received.decode()."
)

# (what the check shows, the first part the server sends, the part it sends about PAUSE s
# later, the hint when fetch returns something else than the two, decoded)
FETCH_CASES = [
    ("returns the whole greeting, sent in two parts, as a str", FIRST, SECOND, HINT_COLLECT),
]


def _fetch_sent(first: bytes, second: bytes) -> str:
    return (
        f"a server that sends {first!r}, then {second!r} about {PAUSE:g} s later, "
        "then closes the connection"
    )


def _fetch_server(first, second, returned, accepted, early, decided):
    """The check's server: ``first``, then ``second`` (after PAUSE, or once fetch has
    returned), then the end; ``early`` is set when fetch returned before that end."""

    def fetch_server(port):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))
            listener.listen(1)
            conn, _ = accept_ours(listener)
            accepted.set()
            with conn:
                conn.sendall(first)
                returned.wait(PAUSE)  # the rest comes later, or once fetch has returned
                with contextlib.suppress(OSError):  # the client may be gone already
                    conn.sendall(second)
                if returned.wait(LINGER):  # fetch returned before the end was sent
                    early.set()
                decided.set()

    return fetch_server


def _fetch_case(fetch, subject, first, second, hint, seen) -> None:
    """Run ``fetch(port)`` against a server that sends ``first``, then ``second``; the
    first socket it read without a timeout is noted in ``seen`` for ``_with_timeout``."""
    sent = _fetch_sent(first, second)
    returned = threading.Event()
    accepted = threading.Event()
    early = threading.Event()  # fetch returned before the server had closed
    decided = threading.Event()  # the server has seen whether it did
    watched = WatchedCall(fetch)
    server = netlab.serve(
        _fetch_server(first, second, returned, accepted, early, decided),
        port=None,
        name=f"check-{subject}-server",
        announce=False,
    )
    try:
        call = call_bounded(
            watched,
            server.port,
            timeout=FETCH_TIMEOUT,
            on_timeout=lambda: watched.end(server.port),
        )
    finally:
        returned.set()
        if accepted.is_set():
            decided.wait(PAUSE + LINGER)  # let the server note what it saw, then stop it
        server.stop()
        watched.close_all()
    if any(timeout is None for timeout in watched.read_timeouts):
        seen.setdefault("untimed", sent)
    if not call.finished:
        raise Failure(
            f"it was still running {FETCH_TIMEOUT - PAUSE:g} s after the server had closed",
            HINT_EOF,
            sent,
        )
    if call.error is not None:
        raise Failure(
            f"it raised {describe_exception(call.error)}", _fetch_error_hint(call.error), sent
        )
    if not accepted.is_set():
        raise Failure("it never connected to the check's server", HINT_CONNECT, sent)
    result, expected = call.result, (first + second).decode()
    if isinstance(result, bytes | bytearray):
        raise Failure(f"it returned bytes, {show_bytes(result)}", HINT_DECODE, sent)
    if result == first.decode(errors="replace"):
        raise Failure(f"it returned {result!r}: only the first part", HINT_ONE_RECV, sent)
    if result is None:
        raise Failure("it returned None", HINT_RETURN_TEXT, sent)
    if isinstance(result, str) and result.startswith(("b'", 'b"')):
        raise Failure(f"it returned {result[:60]!r}", HINT_STR_OF_BYTES, sent)
    if result == expected and early.is_set():
        raise Failure(
            "it returned before the server had closed the connection", HINT_FIXED_RECVS, sent
        )
    if result != expected:
        raise Failure(f"it returned {str(result)[:60]!r}, expected {expected!r}", hint, sent)


def _with_timeout(seen) -> None:
    """Every socket that fetch read from, in the cases before, had a timeout."""
    if "untimed" in seen:
        raise Failure(
            "it called recv() on a socket without a timeout", HINT_TIMEOUT, seen["untimed"]
        )


def check_fetch(fetch) -> object:
    """Run ``fetch(port)`` against a real server that sends its greeting in two parts."""
    name = getattr(fetch, "__name__", "fetch")
    subject = name if name.isidentifier() else "fetch"
    seen = {}  # what the cases saw, judged again by the last check
    checks = [
        (title, partial(_fetch_case, fetch, subject, first, second, hint, seen))
        for title, first, second, hint in FETCH_CASES
    ]
    checks.append(
        ("reads with a timeout, so a silent server cannot hang it", partial(_with_timeout, seen))
    )
    return run_checks(subject, _guarded(checks), function=fetch)
