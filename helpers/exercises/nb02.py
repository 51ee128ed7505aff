"""Exercises of notebook 02, anatomy of a connection: each ``check_<name>(function)``.

    from helpers.exercises import nb02
    nb02.check_port_is_open(port_is_open)

These checks set up the situations of the notebook for real: a port nobody listens on
(refused), a server whose queue of waiting connections is full (connect hangs on
Linux), a port with an old connection in TIME_WAIT (bind fails without SO_REUSEADDR).
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


def check_port_is_open(port_is_open) -> object:
    """Attack ``port_is_open(port) -> bool`` with a listening, a refusing and a full port."""

    def expect(situation, due, sent, timeout=CALL_TIMEOUT):
        def check():
            with situation() as port:
                call = call_bounded(port_is_open, port, timeout=timeout)
            if not call.finished:
                raise Failure(f"it had not returned after {timeout:g} s", HINT_TIMEOUT, sent)
            if call.error is not None:
                hint = (
                    HINT_REFUSED
                    if isinstance(call.error, ConnectionRefusedError)
                    else HINT_TIMEOUT
                    if isinstance(call.error, TimeoutError)
                    else "Read the exception: return True or False, do not raise."
                )
                raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
            if call.result is not due:
                raise Failure(
                    f"it returned {call.result!r:.40}, expected {due}",
                    "Return True when connect() succeeds, False when it fails.",
                    sent,
                )

        return check

    def closes_its_socket():
        sent = "a port where a server listens"
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
                "Close the socket before returning, also when you keep it somewhere: "
                "`with socket.create_connection(...) as s:` closes it for you, even when an "
                "exception leaves the block.",
                sent,
            )
        if any(issubclass(w.category, ResourceWarning) for w in caught):
            raise Failure(
                "Python warned: ResourceWarning: unclosed socket",
                "Close the socket when you are done: `with socket.create_connection(...) "
                "as s:` closes it for you, even when an exception leaves the block.",
                sent,
            )

    return run_checks(
        "port_is_open",
        [
            (
                "True when a server listens",
                expect(listening, True, "a port where a server listens"),
            ),
            (
                "False when nothing listens (connection refused)",
                expect(refusing, False, "a port nobody listens on"),
            ),
            (
                "False, and quickly, when the server's queue is full",
                expect(
                    full_backlog,
                    False,
                    "a server that called listen(0) and never accepts, with its queue full",
                ),
            ),
            ("closes its socket", closes_its_socket),
        ],
        function=port_is_open,
    )


# --- Exercise 2: make_server_socket -------------------------------------------------------------


def check_make_server_socket(make_server_socket) -> object:
    """Check ``make_server_socket(port)``: listening on 127.0.0.1, rebindable at once."""

    def call_on(port, sent):
        call = call_bounded(make_server_socket, port)
        if not call.finished:
            raise Failure("it did not return", "Do not accept() here: return the socket.", sent)
        if call.error is not None:
            error = call.error
            if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
                if _sets_reuseaddr_elsewhere():
                    hint = (
                        "You set SO_REUSEADDR after bind(): the socket it returns has the "
                        "option, but bind() has already failed by then. It must come before "
                        "bind(): s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1), "
                        "then s.bind(...)."
                    )
                else:
                    hint = (
                        "An old connection on this port is in TIME_WAIT. Set SO_REUSEADDR "
                        "before bind(): s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)."
                    )
                raise Failure(f"it raised {describe_exception(error)}", hint, sent)
            raise Failure(
                f"it raised {describe_exception(error)}",
                "Read the exception: create, bind, listen and return the socket.",
                sent,
            )
        if call.result is None:
            raise Failure(
                "it returned None",
                "Return the listening socket: end with `return s` (a function without a "
                "return statement returns None).",
                sent,
            )
        if not isinstance(call.result, socket.socket):
            raise Failure(f"it returned {call.result!r:.40}", "Return the socket object.", sent)
        if call.result.fileno() == -1:
            raise Failure(
                "it returned a closed socket",
                "Do not close the socket you return (no `with socket.socket() as s:` "
                "around it, no s.close()): the caller uses it, and closes it when done.",
                sent,
            )
        return call.result

    def _sets_reuseaddr_elsewhere() -> bool:
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

    def listens_on_loopback():
        port = _free_port()
        sent = "make_server_socket(port) on a free port"
        with call_on(port, sent) as sock:
            host, got_port = sock.getsockname()[:2]
            if host != "127.0.0.1":
                raise Failure(
                    f"it is bound to {host!r}: every network interface",
                    "Bind ('127.0.0.1', port): '' and '0.0.0.0' let other computers on the "
                    "network connect too (a café's Wi-Fi, for instance).",
                    sent,
                )
            if got_port != port:
                raise Failure("it is bound to another port", "Bind the port you are given.", sent)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1:
                raise Failure(
                    "the socket does not listen", "Call s.listen() before returning it.", sent
                )

    def accepts_a_client():
        port = _free_port()
        with call_on(port, "make_server_socket(port), then a client connects") as sock:
            sock.settimeout(CALL_TIMEOUT)
            with socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT):
                conn, _ = sock.accept()
                conn.close()

    def rebinds_after_time_wait():
        port = _free_port()
        make_time_wait(port)
        with call_on(port, "a port where an old connection is in TIME_WAIT"):
            pass

    return run_checks(
        "make_server_socket",
        [
            ("listens on 127.0.0.1 at the given port", listens_on_loopback),
            ("a client can connect and be accepted", accepts_a_client),
            ("binds while an old connection is in TIME_WAIT", rebinds_after_time_wait),
        ],
        function=make_server_socket,
    )


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Exercise 3: hello_server ----------------------------------------------------------------------

HINT_CLOSE = (
    "Close the client's socket after the greeting (c.close()): the client reads until the "
    "end, and the end comes only when you close."
)


def check_hello_server(hello_server) -> object:
    """Attack ``hello_server(port)``: the seed's server, fixed, for client after client."""

    def greeted(server, sent):
        with connect(server) as sock:
            data, how = read_to_eof(sock, server)
            if how == "eof" and data == GREETING:
                return
            if data == GREETING:
                raise Failure("the greeting came, but the connection stayed open", HINT_CLOSE, sent)
            if how == "timeout" and not data:
                raise Failure(
                    "nothing came while the client waited (the client sends nothing)",
                    "Your server waits for the client to send first; this protocol's server "
                    "speaks first: right after accept(), sendall() the greeting (no recv() "
                    "before it).",
                    sent,
                )
            raise Failure(
                f"got {show_bytes(data)}, expected {show_bytes(GREETING)}",
                "Send exactly b'Thank you for connecting\\n' with sendall().",
                sent,
            )

    def one_client():
        with serving(hello_server) as server:
            greeted(server, "a client connects and reads until the end")

    def loopback_only():
        with serving(hello_server) as server:
            here = psutil.Process()
            hosts = sorted(
                c.laddr.ip
                for c in here.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
            )
            if hosts and hosts != ["127.0.0.1"]:
                raise Failure(
                    f"it listens on {hosts[0]!r}: every network interface",
                    "Bind ('127.0.0.1', port): '' means every interface, so anyone on your "
                    "network could connect.",
                    "where the server listens (read from the operating system)",
                )

    def one_after_another():
        with serving(hello_server) as server:
            for i in range(3):
                greeted(server, f"three clients one after another: client {i + 1}")

    return run_checks(
        "hello_server",
        [
            ("a client gets the greeting, then the end", one_client),
            ("listens on 127.0.0.1 only", loopback_only),
            ("three clients, one after another", one_after_another),
        ],
    )
