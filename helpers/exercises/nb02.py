"""Exercises of notebook 02, anatomy of a connection: each ``check_<name>(function)``.

    from helpers.exercises import nb02
    nb02.check_port_is_open(port_is_open)

These checks set up the situations of the notebook for real: a port nobody listens on
(refused), a server whose queue of waiting connections is full (connect hangs on
Linux), a port with an old connection in TIME_WAIT (bind fails without SO_REUSEADDR).
Each check's cases are a table (``PORT_CASES``, ``SERVER_SOCKET_CASES``, ``HELLO_CASES``),
each row run by the engine of its exercise (``_port_case``, ``_server_socket_case``,
``_hello_case``).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import socket
import warnings

import psutil

from ._checker import (
    CALL_TIMEOUT,
    Failure,
    accept_from,
    call_bounded,
    connect,
    describe_exception,
    read_to_eof,
    run_checks,
    serving,
    show_bytes,
)

GREETING = b"Thank you for connecting\n"


# --- situations, set up with real sockets --------------------------------------------------


@contextlib.contextmanager
def listening():
    """A port where a server listens (it never accepts: the kernel completes connections)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@contextlib.contextmanager
def refusing():
    """A port that is bound but not listening: a connect gets refused (RST), no race."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


@contextlib.contextmanager
def full_backlog():
    """A listening port whose queue is full: on Linux, new connects hang (SYN dropped)."""
    fillers = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        try:
            for _ in range(4):
                filler = socket.socket()
                fillers.append(filler)
                filler.settimeout(0.5)
                try:
                    filler.connect(("127.0.0.1", port))
                except (TimeoutError, ConnectionRefusedError):
                    break  # the queue is full now
            yield port
        finally:
            for filler in fillers:
                filler.close()


def make_time_wait(port: int) -> None:
    """Leave a connection on ``port`` in TIME_WAIT: the server side closes first."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(CALL_TIMEOUT)
        with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as client:
            conn = accept_from(server, client.getsockname())
            conn.close()  # the server's side closes first: it is the one left in TIME_WAIT
            client.recv(1)  # b'': the server's FIN has arrived; now the client closes too


# --- Exercise 1: port_is_open --------------------------------------------------------------

HINT_REFUSED = (
    "When nothing listens, connect() raises ConnectionRefusedError: catch it "
    "(`except ConnectionRefusedError: return False`)."
)
HINT_TIMEOUT = (
    "When the server's queue is full, Linux drops the connection request and connect() "
    "waits (more than a minute!). Give it a timeout: "
    "socket.create_connection(('127.0.0.1', port), timeout=1), and catch OSError, which "
    "covers both ConnectionRefusedError and TimeoutError."
)
HINT_RAISED = "Read the exception: return True or False, do not raise."
HINT_TRUE_FALSE = "Return True when connect() succeeds, False when it fails."
HINT_LEFT_OPEN = (
    "Close the socket before returning, also when you keep it somewhere: "
    "`with socket.create_connection(...) as s:` closes it for you, even when an exception "
    "leaves the block."
)
HINT_UNCLOSED = (
    "Close the socket when you are done: `with socket.create_connection(...) as s:` "
    "closes it for you, even when an exception leaves the block."
)
SENT_LISTENING = "a port where a server listens"

# (what the check shows, the situation that gives the port, the answer due, the input
# as the verdict names it, the hint for a wrong answer)
PORT_CASES = [
    ("True when a server listens", listening, True, SENT_LISTENING, HINT_TRUE_FALSE),
    (
        "False when nothing listens (connection refused)",
        refusing,
        False,
        "a port nobody listens on",
        HINT_TRUE_FALSE,
    ),
    (
        "False, and quickly, when the server's queue is full",
        full_backlog,
        False,
        "a server that called listen(0) and never accepts, with its queue full",
        HINT_TRUE_FALSE,
    ),
]


def _port_case(port_is_open, situation, due, sent, hint, timeout=CALL_TIMEOUT):
    """The check of one row of ``PORT_CASES``: ``port_is_open`` answers ``due`` in time."""

    def check():
        with situation() as port:
            call = call_bounded(port_is_open, port, timeout=timeout)
        if not call.finished:
            raise Failure(f"it had not returned after {timeout:g} s", HINT_TIMEOUT, sent)
        if call.error is not None:
            if isinstance(call.error, ConnectionRefusedError):
                error_hint = HINT_REFUSED
            elif isinstance(call.error, TimeoutError):
                error_hint = HINT_TIMEOUT
            else:
                error_hint = HINT_RAISED
            raise Failure(f"it raised {describe_exception(call.error)}", error_hint, sent)
        if call.result is not due:
            raise Failure(f"it returned {call.result!r:.40}, expected {due}", hint, sent)

    return check


def _closes_its_socket(port_is_open):
    def check():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen(8)
                call = call_bounded(port_is_open, server.getsockname()[1])
                del call
                gc.collect()
                still_open = _connections_left_open(server)
        if still_open:
            raise Failure(
                "your function returned, but its connection to the server stayed open "
                "(the server never saw it close)",
                HINT_LEFT_OPEN,
                SENT_LISTENING,
            )
        if any(issubclass(w.category, ResourceWarning) for w in caught):
            raise Failure(
                "Python warned: ResourceWarning: unclosed socket", HINT_UNCLOSED, SENT_LISTENING
            )

    return check


def check_port_is_open(port_is_open) -> object:
    """Attack ``port_is_open(port) -> bool`` with a listening, a refusing and a full port."""
    checks = [(title, _port_case(port_is_open, *case)) for title, *case in PORT_CASES]
    checks.append(("closes its socket", _closes_its_socket(port_is_open)))
    return run_checks("port_is_open", checks, function=port_is_open)


# --- Exercise 2: make_server_socket -------------------------------------------------------------

HINT_NO_ACCEPT = "Do not accept() here: return the socket."
HINT_REUSE_TOO_LATE = (
    "You set SO_REUSEADDR after bind(): the socket it returns has the option, but bind() "
    "has already failed by then. It must come before bind(): "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1), then s.bind(...)."
)
HINT_REUSEADDR = (
    "An old connection on this port is in TIME_WAIT. Set SO_REUSEADDR before bind(): "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)."
)
HINT_CREATE = "Read the exception: create, bind, listen and return the socket."
HINT_RETURN_IT = (
    "Return the listening socket: end with `return s` (a function without a return "
    "statement returns None)."
)
HINT_SOCKET_OBJECT = "Return the socket object."
HINT_KEEP_OPEN = (
    "Do not close the socket you return (no `with socket.socket() as s:` around it, no "
    "s.close()): the caller uses it, and closes it when done."
)
HINT_BIND_LOOPBACK = (
    "Bind ('127.0.0.1', port): '' and '0.0.0.0' let other computers on the network "
    "connect too (a café's Wi-Fi, for instance)."
)
HINT_GIVEN_PORT = "Bind the port you are given."
HINT_LISTEN = "Call s.listen() before returning it."


def _server_socket_on(make_server_socket, port, sent) -> socket.socket:
    """``make_server_socket(port)``'s socket, open; a Failure says what went wrong."""
    call = call_bounded(make_server_socket, port)
    if not call.finished:
        raise Failure("it did not return", HINT_NO_ACCEPT, sent)
    if call.error is not None:
        error = call.error
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            late = _sets_reuseaddr_elsewhere(make_server_socket)
            hint = HINT_REUSE_TOO_LATE if late else HINT_REUSEADDR
            raise Failure(f"it raised {describe_exception(error)}", hint, sent)
        raise Failure(f"it raised {describe_exception(error)}", HINT_CREATE, sent)
    if call.result is None:
        raise Failure("it returned None", HINT_RETURN_IT, sent)
    if not isinstance(call.result, socket.socket):
        raise Failure(f"it returned {call.result!r:.40}", HINT_SOCKET_OBJECT, sent)
    if call.result.fileno() == -1:
        raise Failure("it returned a closed socket", HINT_KEEP_OPEN, sent)
    return call.result


def _sets_reuseaddr_elsewhere(make_server_socket) -> bool:
    """On a free port (no TIME_WAIT), does the socket returned have SO_REUSEADDR?
    Then the option is there, only too late: set after the bind() that failed."""
    call = call_bounded(make_server_socket, _free_port())
    if not call.finished or not isinstance(call.result, socket.socket):
        return False
    with call.result as sock:
        try:
            return sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _time_waited_port() -> int:
    """A free port with an old connection on it in TIME_WAIT."""
    port = _free_port()
    make_time_wait(port)
    return port


def _bound_to(sock, port, sent) -> None:
    """The socket listens on 127.0.0.1, at ``port``."""
    host, got_port = sock.getsockname()[:2]
    if host != "127.0.0.1":
        raise Failure(f"it is bound to {host!r}: every network interface", HINT_BIND_LOOPBACK, sent)
    if got_port != port:
        raise Failure("it is bound to another port", HINT_GIVEN_PORT, sent)
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1:
        raise Failure("the socket does not listen", HINT_LISTEN, sent)


def _accepts_one(sock, port, sent) -> None:
    """A client connects to ``port``, and the socket accepts it."""
    sock.settimeout(CALL_TIMEOUT)
    with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT):
        conn, _ = sock.accept()
        conn.close()


def _returned(sock, port, sent) -> None:
    """Nothing more: that make_server_socket returned an open socket is the case."""


# (what the check shows, the function that gives the port, the input as the verdict
# names it, what is done with the socket returned)
SERVER_SOCKET_CASES = [
    (
        "listens on 127.0.0.1 at the given port",
        _free_port,
        "make_server_socket(port) on a free port",
        _bound_to,
    ),
    (
        "a client can connect and be accepted",
        _free_port,
        "make_server_socket(port), then a client connects",
        _accepts_one,
    ),
    (
        "binds while an old connection is in TIME_WAIT",
        _time_waited_port,
        "a port where an old connection is in TIME_WAIT",
        _returned,
    ),
]


def _server_socket_case(make_server_socket, port_of, sent, then):
    """The check of one row of ``SERVER_SOCKET_CASES``."""

    def check():
        port = port_of()
        with _server_socket_on(make_server_socket, port, sent) as sock:
            then(sock, port, sent)

    return check


def check_make_server_socket(make_server_socket) -> object:
    """Check ``make_server_socket(port)``: listening on 127.0.0.1, rebindable at once."""
    checks = [
        (title, _server_socket_case(make_server_socket, *case))
        for title, *case in SERVER_SOCKET_CASES
    ]
    return run_checks("make_server_socket", checks, function=make_server_socket)


def _connections_left_open(server: socket.socket) -> int:
    """How many of the connections waiting on ``server`` were not closed by their client.

    Only connections to the check's own listening socket count (on a shared machine
    other people's sockets are none of its business). A closed client has sent its FIN:
    the accepted socket is readable and recv() returns b''. The wait is bounded by the
    socket itself: readable at once for a closed client, 0.5 s for one still open.
    """
    left = 0
    server.setblocking(False)
    while True:
        try:
            conn, _ = server.accept()
        except (BlockingIOError, InterruptedError):
            return left
        with conn:
            conn.settimeout(0.5)
            try:
                if conn.recv(1) != b"":
                    left += 1  # it sent something and stays: not closed either
            except TimeoutError:
                left += 1
            except OSError:
                pass  # reset: closed, if rudely


# --- Exercise 3: hello_server ----------------------------------------------------------------------

HINT_CLOSE = (
    "Close the client's socket after the greeting (c.close()): the client reads until the "
    "end, and the end comes only when you close."
)
HINT_SPEAK_FIRST = (
    "Your server waits for the client to send first; this protocol's server speaks first: "
    "right after accept(), sendall() the greeting (no recv() before it)."
)
HINT_EXACT_GREETING = "Send exactly b'Thank you for connecting\\n' with sendall()."
HINT_LOOPBACK = (
    "Bind ('127.0.0.1', port): '' means every interface, so anyone on your network could connect."
)


def _greeted(server, sent) -> None:
    """A client connects, reads until the end, and must get exactly GREETING."""
    with connect(server) as sock:
        data, how = read_to_eof(sock, server)
        if how == "eof" and data == GREETING:
            return
        if data == GREETING:
            raise Failure("the greeting came, but the connection stayed open", HINT_CLOSE, sent)
        if how == "timeout" and not data:
            raise Failure(
                "nothing came while the client waited (the client sends nothing)",
                HINT_SPEAK_FIRST,
                sent,
            )
        raise Failure(
            f"got {show_bytes(data)}, expected {show_bytes(GREETING)}", HINT_EXACT_GREETING, sent
        )


def _clients(server, inputs) -> None:
    """One client after another, one per input (its description in the verdict)."""
    for sent in inputs:
        _greeted(server, sent)


def _listens_on_loopback(server, inputs) -> None:
    """The operating system says where the server listens: 127.0.0.1 only."""
    here = psutil.Process()
    hosts = sorted(
        c.laddr.ip
        for c in here.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
    )
    if hosts and hosts != ["127.0.0.1"]:
        raise Failure(
            f"it listens on {hosts[0]!r}: every network interface", HINT_LOOPBACK, inputs[0]
        )


# (what the check shows, what is done with the server, the inputs as the verdict names them)
HELLO_CASES = [
    (
        "a client gets the greeting, then the end",
        _clients,
        ["a client connects and reads until the end"],
    ),
    (
        "listens on 127.0.0.1 only",
        _listens_on_loopback,
        ["where the server listens (read from the operating system)"],
    ),
    (
        "three clients, one after another",
        _clients,
        [f"three clients one after another: client {i + 1}" for i in range(3)],
    ),
]


def _hello_case(hello_server, how, inputs):
    """The check of one row of ``HELLO_CASES``: a fresh server, then ``how``."""

    def check():
        with serving(hello_server) as server:
            how(server, inputs)

    return check


def check_hello_server(hello_server) -> object:
    """Attack ``hello_server(port)``: the tutorial's server, fixed, for client after client."""
    checks = [(title, _hello_case(hello_server, *case)) for title, *case in HELLO_CASES]
    return run_checks("hello_server", checks)
