"""Exercises of notebook 07, timeouts, errors and shutdown.

    nb07.check_read_all(read_all)
    nb07.check_ask(ask)
    nb07.check_graceful_server(graceful_server)

Each check uses real sockets on 127.0.0.1 and bounds every wait, so a solution that
hangs (no timeout, no half-close, a stop that is never seen) gets a verdict, not a
frozen notebook.

The cases are tables: ``READ_ALL_CASES`` (pieces sent, bytes due), ``ASK_CASES`` (request
sent, reply due) and ``GRACEFUL_SCENARIOS`` (a title and a scenario function run against a
fresh server); one engine function per kind of case turns a case into a check, and each
``check_<name>`` builds its checks from its table, then adds its one-off checks.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import warnings

from helpers.exercises._checker import (
    REPLY_TIMEOUT,
    Failure,
    WatchedCall,
    accept_ours,
    call_bounded,
    call_with_pieces,
    connect,
    connected_pair,
    describe_exception,
    describe_reply,
    queued,
    read_reply,
    read_to_eof,
    returned_none,
    run_checks,
    send_in_background,
    server_side,
    serving,
    show_bytes,
    still_listens,
)

HINT_LOOP = (
    "recv() returns what has arrived so far. Keep calling it, appending each chunk, "
    "until it returns b'' (the peer closed)."
)
HINT_EOF = (
    "At the end of the stream recv() returns b'' at once, forever: test `if not chunk:` "
    "(b'' is not equal to '') and stop."
)
HINT_TIMEOUT = (
    "Call sock.settimeout(timeout) before reading: a silent peer then makes recv() "
    "raise TimeoutError instead of waiting forever."
)
HINT_LET_TIMEOUT_OUT = (
    "Let TimeoutError reach the caller (do not catch it, or raise it again): returning "
    "what arrived so far makes a half-sent reply look complete."
)
HINT_SHUT_WR = (
    "After sendall(), call sock.shutdown(socket.SHUT_WR): it sends the FIN that tells the "
    "server 'my request is complete', and you can still read its reply."
)
HINT_SHUT_RDWR = (
    "If you called shutdown(socket.SHUT_RDWR): it also closes your reading side, so recv() "
    "returns b'' at once (or the reply arriving there resets the connection). Use "
    "shutdown(socket.SHUT_WR): stop sending only."
)
HINT_CLOSE_TOO_EARLY = (
    "close() ends both directions and frees the socket: you cannot recv() after it. "
    "Use shutdown(socket.SHUT_WR) to stop sending only."
)


SLOW_READER_BYTES = 4 << 20  # more than the kernel buffers between the two hold
SLOW_READER_PAUSE = 0.75  # s: over a 0.1-0.5 s timeout, well under "a few seconds"
HINT_SLOW_READER = (
    "A client that reads slowly makes sendall() wait until it has read: a short timeout "
    "on the connection (conn.settimeout(0.2)) ends that wait with TimeoutError and cuts "
    "the client off (or crashes the server). Keep a timeout of a few seconds on the "
    "connection (conn.settimeout(5)), and look at `stop` between short waits for data "
    "instead: select.select([conn], [], [], 0.1)."
)


def _unexpected(call, should: str) -> Failure:
    return Failure(f"it raised {describe_exception(call.error)}", f"Your function should {should}.")


# --- Exercise 1: read_all(sock, timeout) --------------------------------------------------


HINT_PER_SILENCE = (
    "The timeout bounds each silence, not the whole reply: sock.settimeout(timeout) once, "
    "and every recv() waits at most that long for the next bytes; a reply that keeps coming "
    "may take longer in all."
)
SHOULD_RETURN_AT_EOF = "return the bytes once recv() returns b''"
_BIG_READ = bytes(range(256)) * 1200

# (title, pieces sent, bytes due, input shown): the peer closes after the pieces, and
# read_all(sock, 1.0) must return all the bytes
READ_ALL_CASES = [
    (
        "reads pieces until the peer closes",
        [b"Hello, ", b"wor", b"ld!"],
        b"Hello, world!",
        "b'Hello, ', b'wor', b'ld!' then the peer closes",
    ),
    ("reads 300 KB", [_BIG_READ], _BIG_READ, f"{len(_BIG_READ)} bytes then close"),
    ("an empty reply is b''", [], b"", "nothing, the peer closes"),
]
SLOW_PIECES = [b"one ", b"two ", b"three ", b"four ", b"five"]  # sent 0.3 s apart


def _read_all_case(read_all, pieces, expected, sent):
    def check():
        with connected_pair() as (learner, attacker):
            call = call_with_pieces(read_all, learner, attacker, pieces, 1.0, close_after=True)
        if not call.finished:
            raise Failure("it did not return after the peer closed", HINT_EOF, sent)
        if call.error is not None:
            raise _unexpected(call, SHOULD_RETURN_AT_EOF)
        returned_none(call.result, sent)
        if not isinstance(call.result, bytes | bytearray):
            raise Failure(f"it returned {type(call.result).__name__}", "Return bytes.", sent)
        if bytes(call.result) != expected:
            raise Failure(f"it returned {show_bytes(call.result)}", HINT_LOOP, sent)

    return check


def _silent_peer(read_all):
    def check():
        sent = "b'partial' then silence (connection left open), timeout=0.5"
        with connected_pair() as (learner, attacker):
            call = call_with_pieces(read_all, learner, attacker, [b"partial"], 0.5, timeout=3.0)
        if not call.finished:
            raise Failure("it was still waiting 3 s later", HINT_TIMEOUT, sent)
        if isinstance(call.error, TimeoutError):
            return
        if call.error is not None:
            raise _unexpected(call, "let TimeoutError out when the peer is silent")
        raise Failure(f"it returned {show_bytes(call.result)}", HINT_LET_TIMEOUT_OUT, sent)

    return check


def _slow_but_steady(read_all):
    def check():
        # Five pieces, each 0.3 s after the one before: never 1 s of silence, though the
        # whole reply takes 1.2 s. The pauses are the scenario, not a synchronisation.
        pieces = SLOW_PIECES
        sent = "b'one ', b'two ', ... five pieces 0.3 s apart, then the peer closes; timeout=1"
        with connected_pair() as (learner, attacker):
            finished = threading.Event()

            def slow_sender():
                try:
                    for index, piece in enumerate(pieces):
                        if index and finished.wait(0.3):
                            return
                        attacker.sendall(piece)
                    attacker.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

            sender = threading.Thread(target=slow_sender, name="exercise-slow", daemon=True)
            sender.start()

            def unblock():
                with contextlib.suppress(OSError):
                    learner.shutdown(socket.SHUT_RDWR)

            try:
                call = call_bounded(read_all, learner, 1.0, timeout=4.0, on_timeout=unblock)
            finally:
                finished.set()
                sender.join(2.0)
        if not call.finished:
            raise Failure("it had not returned 4 s later", HINT_EOF, sent)
        if isinstance(call.error, TimeoutError):
            raise Failure(
                "it raised TimeoutError, though bytes kept coming (never 1 s of silence)",
                HINT_PER_SILENCE,
                sent,
            )
        if call.error is not None:
            raise _unexpected(call, SHOULD_RETURN_AT_EOF)
        returned_none(call.result, sent)
        if call.result != b"".join(pieces):
            raise Failure(f"it returned {show_bytes(call.result)}", HINT_LOOP, sent)

    return check


def check_read_all(read_all) -> object:
    """``read_all(sock, timeout)`` returns every byte until EOF; a silent peer -> TimeoutError."""
    checks = [(title, _read_all_case(read_all, *case)) for title, *case in READ_ALL_CASES]
    checks.append(("a silent peer raises TimeoutError", _silent_peer(read_all)))
    checks.append(
        ("a slow reply, never silent for `timeout`, is read whole", _slow_but_steady(read_all))
    )
    return run_checks("read_all(sock, timeout)", checks, function=read_all)


# --- Exercise 2: ask(port, request) -------------------------------------------------------


class UpperServer:
    """Reads a request until EOF (the client's SHUT_WR), then replies with it upper-cased.

    A client that never half-closes is given up after ``patience`` seconds: the server
    closes without a reply and remembers that it never saw the end of the request.
    """

    def __init__(self, patience: float = 1.5):
        self.patience = patience
        self.saw_eof: bool | None = None
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(5.0)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name="exercise-upper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.conn, _ = accept_ours(self.listener)
        except OSError:
            return
        with self.conn:
            self.conn.settimeout(self.patience)
            request = bytearray()
            try:
                while chunk := self.conn.recv(65536):
                    request += chunk
                self.saw_eof = True
                self.conn.sendall(bytes(request).upper())
            except OSError:
                self.saw_eof = self.saw_eof or False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.shutdown(socket.SHUT_RDWR)
        self.thread.join(2.0)


HINT_ASK_TIMEOUT = (
    "Give the socket a timeout: socket.create_connection(('127.0.0.1', port), timeout=5). "
    "Without one, a server that never answers keeps ask waiting in recv() for ever."
)
_BIG_REQUEST = b"abcdefghij" * 30_000

# (title, request, input shown): ask(port, request) must return request.upper() from an
# UpperServer, which replies once it has seen the end of the request
ASK_CASES = [
    ("b'hello' -> b'HELLO'", b"hello", "b'hello'"),
    ("a 300 KB request and reply", _BIG_REQUEST, f"{len(_BIG_REQUEST)} bytes"),
    ("an empty request", b"", "b''"),
]


def _ask_case(ask, request: bytes, sent: str, timeouts: list):
    """The check of one exchange; the timeouts of the sockets ask read from go to ``timeouts``."""

    def check():
        server = UpperServer()
        watched = WatchedCall(ask)
        try:
            call = call_bounded(watched, server.port, request, timeout=4.0, on_timeout=server.close)
            if call.finished:
                # Let the server see what the client did (it ends by itself, within its
                # patience) before judging: a busy machine may not have run it yet.
                server.thread.join(server.patience + 1.0)
        finally:
            server.close()
            watched.close_all()
        timeouts.extend(watched.read_timeouts)
        if not server.saw_eof:
            raise Failure("the server never saw the end of your request", HINT_SHUT_WR, sent)
        if not call.finished:
            raise Failure("it was still waiting after the reply had ended", HINT_EOF, sent)
        if isinstance(call.error, ConnectionResetError):
            # This server never resets: Linux does, when the reply reaches a socket whose
            # reading side was shut down (SHUT_RD or SHUT_RDWR).
            raise Failure(
                f"it raised {describe_exception(call.error)}, but the server never resets",
                HINT_SHUT_RDWR,
                sent,
            )
        if call.error is not None:
            if isinstance(call.error, OSError) and call.error.errno in (9, 10038):
                raise Failure(
                    f"it raised {describe_exception(call.error)}", HINT_CLOSE_TOO_EARLY, sent
                )
            raise _unexpected(call, "return the server's reply")
        returned_none(call.result, sent)
        if call.result == b"" and request:
            raise Failure(
                "it returned b'' although the server sent the reply",
                HINT_SHUT_RDWR,
                sent,
            )
        if call.result != request.upper():
            raise Failure(f"it returned {show_bytes(call.result)}", HINT_LOOP, sent)

    return check


def _reads_with_timeout(timeouts: list):
    """The check that every read of the exchanges before was on a socket with a timeout."""

    def check():
        if any(timeout is None for timeout in timeouts):
            raise Failure(
                "it called recv() on a socket without a timeout",
                HINT_ASK_TIMEOUT,
                "b'hello' (the socket ask reads from)",
            )

    return check


def check_ask(ask) -> object:
    """``ask(port, request)`` sends, half-closes, and returns the whole reply."""
    timeouts: list = []  # the timeouts of the sockets ask read from
    checks = [(title, _ask_case(ask, *case, timeouts)) for title, *case in ASK_CASES]
    checks.append(
        (
            "reads with a timeout, so a silent server cannot hang it",
            _reads_with_timeout(timeouts),
        )
    )
    return run_checks("ask(port, request)", checks, function=ask)


# --- Exercise 3: graceful_server(port, stop) ----------------------------------------------


HINT_STOP = (
    "A blocking accept() or recv() never looks at `stop`. Wait at most 0.1 s at a time "
    "(select.select([sock], [], [], 0.1), or settimeout(0.1) on the listening socket) and "
    "check stop.is_set() after each wait; keep a longer timeout (a few seconds) for recv() "
    "and sendall() on the connection, or a slow client gets cut off."
)
HINT_STOP_IN_LOOP = (
    "Your recv() on the connection waits only a short time, but the loop around it goes on "
    "after each timeout without looking at `stop`: check stop.is_set() there too, after "
    "each timeout, and end the conversation when it is set."
)
HINT_IS_SET_CALL = (
    "Call it: `while not stop.is_set():` (with the parentheses); without them "
    "`not stop.is_set` is always False and the loop never runs."
)
HINT_EVENT_TRUTH = (
    "Ask the event whether it is set: `while not stop.is_set():`. `not stop` is always "
    "False, so a `while not stop:` loop never runs and your function returns at once."
)
HINT_KEEP_WAITING = (
    "A recv() timeout only means 'nothing has arrived yet': on TimeoutError look at stop and "
    "keep waiting (continue). Close the connection only when recv() returns b'' or stop is "
    "set."
)
HINT_CLOSE_LISTENER = (
    "Close what you opened before returning: `with listener:` around the loop closes it "
    "however the loop ends."
)
HINT_CLOSE_ALL = (
    "Close what you opened before returning: `with listener:` and `with conn:` blocks close "
    "the sockets however the loops end."
)
HINT_CLOSE_CLIENTS = (
    "On stop, close every client connection too (a `with conn:` block does it), not only "
    "the listening socket: clients then see b''."
)


def _graceful_case(graceful_server, scenario):
    """The check that runs ``scenario(srv, stop)`` against ``graceful_server(port, stop)``."""

    def check():
        stop = _StopEvent()

        def server(port):  # what netlab.serve runs: your function with the event
            return graceful_server(port, stop)

        server.__name__ = "graceful_server"
        try:
            with serving(server) as srv:
                scenario(srv, stop)
        except Failure:
            if stop.truth_tested and not stop.misused:
                raise Failure(
                    "your code tested `stop` itself (as in `while not stop:`): a "
                    "threading.Event object is always true, set or not",
                    HINT_EVENT_TRUTH,
                    "where your function looks at stop",
                ) from None
            raise
        finally:
            if stop.misused:
                raise Failure(
                    "your code tested `stop.is_set` without calling it: that is the method "
                    "itself, which is always true",
                    HINT_IS_SET_CALL,
                    "where your function looks at stop",
                ) from None

    return check


def _expect_hello(srv, client, hint: str, sent: str) -> None:
    """The client sends b'hello'; the same must come back."""
    client.sendall(b"hello")
    data, how = read_reply(client, srv, lambda d: len(d) >= 5)
    if data != b"hello":
        raise Failure(f"the reply was {describe_reply(data, how)}", hint, sent)


def _echoes(srv, stop):
    with connect(srv) as client:
        _expect_hello(srv, client, "Echo what you receive with sendall().", "b'hello'")


QUIET_FOR = 0.5  # s: a client says nothing this long (longer than a 0.1-0.2 s timeout)


def _quiet_client(srv, stop):
    sent = f"a client connects, says nothing for {QUIET_FOR:g} s, then sends b'hello'"
    with connect(srv) as client:
        # The quiet time counts from when your server has taken the connection and waits
        # for data (on a busy machine its accept() may come late) ...
        srv.wait_quiet(REPLY_TIMEOUT, deadlines=False)
        data, how = read_to_eof(client, srv, timeout=QUIET_FOR)  # nothing should happen
        if how == "timeout":
            # ... and ends when what your server's timeouts set off in that time has run:
            # a busy machine may run a thread late, but not skip it.
            srv.wait_quiet(REPLY_TIMEOUT, deadlines=False)
            data, how = read_to_eof(client, srv, timeout=0.05)  # arrived: the server settled
        if how != "timeout":
            raise Failure(
                f"your server closed the connection ({how}) while the client was quiet",
                HINT_KEEP_WAITING,
                sent,
            )
        hint = "Echo what you receive with sendall(), also after a quiet moment."
        _expect_hello(srv, client, hint, sent)


def _stops_when_idle(srv, stop):
    stop.set()
    try:
        srv.wait(timeout=1.5)
    except TimeoutError:
        raise Failure(
            "it was still running 1.5 s after stop.set()", HINT_STOP, "no client; stop.set()"
        ) from None
    if still_listens(srv):
        raise Failure(
            "your function returned, but its listening socket was still open (kept "
            "somewhere, so Python did not close it)",
            HINT_CLOSE_LISTENER,
            "no client; stop.set()",
        )


def _stops_with_a_client(srv, stop):
    sent = "a client connected and sent b'hello'; then stop.set()"
    with connect(srv) as client:
        client.sendall(b"hello")
        read_reply(client, srv, lambda d: len(d) >= 5)
        with warnings.catch_warnings(record=True) as caught:
            # A socket that nobody closed is closed by the garbage collector when your
            # function returns, and Python then warns "unclosed <socket.socket ...>".
            warnings.simplefilter("always", ResourceWarning)
            theirs = server_side(srv, client)
            waits = theirs.gettimeout() if theirs is not None else None
            del theirs  # holding it would keep Python from closing (and warning) after the server
            stop.set()
            try:
                srv.wait(timeout=1.5)
            except TimeoutError:
                # its recv() on the connection times out, yet it goes on: stop is not looked at
                hint = HINT_STOP_IN_LOOP if waits is not None and waits <= 1.0 else HINT_STOP
                raise Failure("it was still running 1.5 s after stop.set()", hint, sent) from None
            gc.collect()
        data, how = read_to_eof(client, None, timeout=1.0)
    unclosed = [str(w.message) for w in caught if "unclosed" in str(w.message)]
    if how == "reset":
        raise Failure(
            "the client got ConnectionResetError (an RST), not an orderly end",
            "Close connections with close() (a FIN); SO_LINGER 0 is for aborting, not stopping.",
            sent,
        )
    mine = f"laddr=('127.0.0.1', {srv.port})"
    if any(mine in message for message in unclosed):
        raise Failure(
            "your function returned without closing a socket (Python closed it later "
            "and warned: unclosed <socket.socket ...>)",
            HINT_CLOSE_ALL,
            sent,
        )
    if how != "eof":
        raise Failure(
            "your server returned, but the client's connection stayed open",
            HINT_CLOSE_CLIENTS,
            sent,
        )


def _slow_reader(srv, stop):
    # The client reads nothing for SLOW_READER_PAUSE s while it sends 4 MiB: the
    # server's sendall() must wait that long for it. The pause is the scenario (a
    # slow client), not a synchronisation.
    payload = bytes(range(256)) * (SLOW_READER_BYTES // 256)
    sent = (
        f"a client sends {len(payload):,} bytes and reads nothing for "
        f"{SLOW_READER_PAUSE:g} s (a slow reader), then reads the echo; then b'hello'"
    )
    srv.wait_quiet(REPLY_TIMEOUT, deadlines=False)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        client.settimeout(5.0)
        client.connect(("127.0.0.1", srv.port))
        sender = send_in_background(client, payload, shut=False)
        threading.Event().wait(SLOW_READER_PAUSE)
        data, how = read_reply(client, srv, lambda d: len(d) >= len(payload), timeout=10.0)
        sender.join(2.0)
    if data != payload:
        ended = {
            "reset": "a reset",
            "eof": "the end (b'')",
            "server-gone": "your server stopped",
            "timeout": "nothing more within 10 s",
        }.get(how, how)
        raise Failure(
            f"the slow client got {len(data):,} of {len(payload):,} bytes back, then {ended}",
            HINT_SLOW_READER,
            sent,
        )
    _echoes(srv, stop)  # and the server still serves the next client


UNREAD_STEP = 8 * 1024  # the client sends this much at a time ...
UNREAD_LIMIT = 4 << 20  # ... until bytes of it wait unread in the server's socket (or this)
HINT_UNREAD = (
    "close() on a socket with bytes you have not read sends an RST, not a FIN: the client "
    "gets ConnectionResetError and may lose the end of your replies. When you stop, read "
    "what the client sent meanwhile before you close: `conn.setblocking(False)`, then "
    "recv() until it raises BlockingIOError (or conn.shutdown(socket.SHUT_WR), then recv() "
    "until b'')."
)


def _stops_with_unread_bytes(srv, stop):
    # The client sends without reading the echo, and the server's socket gets a small
    # send buffer, so its sendall() soon waits. The client goes on, a step at a time,
    # until the kernel says that bytes of it wait in the server's socket, unread (all
    # of them arrived: none still on the client's side); then stop.set().
    sent = (
        f"a client sends {UNREAD_STEP // 1024} KiB at a time without reading the echo, "
        "until your sendall() waits and bytes of the client's wait unread in your socket; "
        "then stop.set(), and the client reads"
    )
    step = bytes(range(256)) * (UNREAD_STEP // 256)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        client.settimeout(5.0)
        client.connect(("127.0.0.1", srv.port))
        theirs = None
        for _ in range(3):  # the server has accepted and waits for bytes
            srv.wait_quiet(1.0)
            theirs = server_side(srv, client)
            if theirs is not None:
                break
        if theirs is None:
            raise Failure("your server did not accept the client", HINT_STOP, sent)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # sendall() waits soon
        total = 0
        while total < UNREAD_LIMIT:
            try:
                client.sendall(step)
            except OSError:
                break  # the server closed: the reading below says how
            total += len(step)
            srv.wait_quiet(1.0)  # the server has read what it will (or waits in sendall)
            unread = queued(theirs, "FIONREAD")
            if unread is None or (unread > 0 and queued(client, "TIOCOUTQ") == 0):
                break  # bytes wait unread on the server's side, none on the client's
        del theirs
        stop.set()
        try:
            data, how = read_to_eof(client, None, timeout=3.0)
        except OSError:
            how = "reset"
        try:
            srv.wait(timeout=1.5)
        except TimeoutError:
            raise Failure("it was still running 1.5 s after stop.set()", HINT_STOP, sent) from None
    if how == "reset":
        raise Failure(
            "the client got ConnectionResetError (an RST): your server closed the "
            "connection with bytes of the client's still unread",
            HINT_UNREAD,
            sent,
        )
    if how != "eof":
        raise Failure(
            "your server returned, but the client's connection stayed open",
            HINT_CLOSE_CLIENTS,
            sent,
        )


# (title, scenario): each scenario(srv, stop) runs against a fresh graceful_server(port, stop)
GRACEFUL_SCENARIOS = [
    ("echoes a client", _echoes),
    ("keeps serving a client that is quiet for a while", _quiet_client),
    ("returns within 1.5 s of stop.set() with no client", _stops_when_idle),
    ("returns, and the client sees b'', when stopped mid-connection", _stops_with_a_client),
    (
        "a client that reads slowly gets its whole echo, and the next one is served",
        _slow_reader,
    ),
    (
        "stopped while bytes of the client's are unread: the client sees b'', not a reset",
        _stops_with_unread_bytes,
    ),
]


def check_graceful_server(graceful_server) -> object:
    """``graceful_server(port, stop)`` echoes (a slow reader too), and returns within 1.5 s of
    ``stop.set()``."""
    checks = [
        (title, _graceful_case(graceful_server, scenario)) for title, scenario in GRACEFUL_SCENARIOS
    ]
    return run_checks("graceful_server(port, stop)", checks)


class _StopEvent(threading.Event):
    """A threading.Event that notices ``stop.is_set`` tested without being called."""

    def __init__(self):
        super().__init__()
        self.misused = False
        self.truth_tested = False  # `while not stop:`; told only if a scenario failed

    def __bool__(self) -> bool:
        self.truth_tested = True
        return True  # what a real Event gives

    @property
    def is_set(self):
        return _IsSet(self)


class _IsSet:
    """What ``stop.is_set`` gives: callable as the real method; its truth records misuse."""

    def __init__(self, event: _StopEvent):
        self.event = event

    def __call__(self) -> bool:
        return threading.Event.is_set(self.event)

    def __bool__(self) -> bool:
        self.event.misused = True
        return True
