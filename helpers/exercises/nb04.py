"""Exercises of notebook 04, echo and protocols: each ``check_<name>(function)`` attacks it.

    from helpers.exercises import nb04
    nb04.check_echo_server(echo_server)

The cases are data. The line protocol's expected replies are a table (``COMMAND_CASES``);
the checks of ``handle_command`` use no socket at all. Those of the servers are tables of
``Scenario`` rows (``ECHO_CASES``, ``COMMAND_SERVER_CASES``: what is sent, how, what must
come back, the hint), each run by its engine (``_whole``, ``_bytewise``, ``_vanishes``,
``_crowd``, ...) on a fresh server: the same lines through real connections, whole, in
pieces, mixed with garbage, from many clients.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

from ._checker import (
    EOF_TIMEOUT,
    REPLY_TIMEOUT,
    Failure,
    abort,
    call_bounded,
    connect,
    describe_exception,
    many_clients,
    read_reply,
    read_to_eof,
    run_checks,
    send_in_background,
    server_side,
    serving,
    show_bytes,
)

HINT_ONE_RECV = (
    "One recv is not one message: it returns what has arrived so far (one byte, or three "
    "lines). Keep reading in a loop until recv returns b''."
)
HINT_LINES = (
    "One recv is not one line: it returns what has arrived so far (one byte, or three "
    "lines). Keep a buffer: add each chunk to it, split off every complete line at b'\\n' "
    "and answer it at once; keep the incomplete rest for the next recv."
)
HINT_CR = (
    "telnet and nc -C end each line with b'\\r\\n', not just b'\\n': strip the line ending "
    "before handle_command, line.rstrip(b'\\r\\n') on the bytes (or "
    "line.rstrip('\\r\\n') on the str)."
)
HINT_ERR_PREFIX = (
    "An error reply must start with 'ERR ' (the three capitals, then a space), e.g. "
    "'ERR unknown command': that prefix is how a client tells an error from an answer."
)
HINT_RESET = (
    "A client may vanish at any moment (its recv raises ConnectionResetError): wrap the "
    "conversation with one client in `try: ... except ConnectionError: pass`, so that one "
    "bad client cannot stop the server."
)
HINT_LOOP = (
    "A server serves client after client: put accept() and the conversation in a "
    "`while True:` loop."
)
HINT_RETURNED = (
    "A server serves client after client: accept() and the conversation go in a "
    "`while True:` loop, and a client that vanishes ends only its own conversation "
    "(`try: ... except ConnectionError: pass` around it, inside the loop)."
)
HINT_CLOSE = (
    "Close the client's socket (conn.close(), or `with conn:`) when the conversation is "
    "over, so that the client sees the end."
)
HINT_EOF = "When recv returns b'' the client has finished: leave the loop (`if not data: break`)."
HINT_SENDALL = (
    "send() may send only part of what you give it (it returns how many bytes it took): "
    "with a timeout on the socket it can, when the client reads slowly and the chunk is "
    "big (here: 64 KiB chunks came back short). Use "
    "sendall(), which sends it all."
)
HINT_TIMEOUT = (
    "A client that connects and says nothing would hold a one-client-at-a-time server for "
    "ever: give each connection a timeout as soon as accept() returns it "
    "(conn.settimeout(10); in socketserver, `timeout = 10` in a StreamRequestHandler), and "
    "catch TimeoutError with ConnectionError around that client's conversation."
)
HINT_TIMEOUT_CAUGHT = (
    "When a silent client's timeout expires, recv raises TimeoutError: catch it with "
    "ConnectionError, `except (ConnectionError, TimeoutError):`, around one client's "
    "conversation (inside the loop), so that the server closes that connection and serves "
    "the next client."
)


def _crash_hint(exc):
    if isinstance(exc, TimeoutError):
        return HINT_TIMEOUT_CAUGHT
    if isinstance(exc, UnicodeDecodeError):
        return (
            "Not every client sends valid UTF-8: an echo server sends back the bytes as they "
            "are, without decoding (and a text protocol answers 'ERR ...' to bad bytes)."
        )
    if isinstance(exc, ConnectionError):
        return HINT_RESET
    return None


def _command_crash_hint(exc):
    if isinstance(exc, UnicodeDecodeError):
        return (
            "Not every client sends valid UTF-8: decode each line inside "
            "`try: ... except UnicodeDecodeError:` and answer it with 'ERR not UTF-8' "
            "(a text protocol answers 'ERR ...' to bad bytes), never crash."
        )
    return _crash_hint(exc)


def _conversation(
    server,
    request: bytes,
    expected: bytes,
    sent: str,
    shut=True,
    mismatch=HINT_ONE_RECV,
    extra_hint=None,
):
    """Send ``request`` (while reading), expect exactly ``expected`` and then the end."""
    with connect(server) as sock:
        send_in_background(sock, request, shut=shut)
        data, how = read_reply(sock, server, lambda d: len(d) >= len(expected))
        # what came after the reply may share its recv() or not: judged the same either way
        extra = data[len(expected) :] if data.startswith(expected) else b""
        _judge(data[: len(data) - len(extra)], how, expected, sent, mismatch)
        more, how = read_to_eof(sock, server, timeout=EOF_TIMEOUT)
        extra += more
        if extra:
            raise Failure(
                f"after {show_bytes(expected)} came {show_bytes(extra)} too",
                extra_hint or "Send back exactly what you received, nothing more.",
                sent,
            )
        if how != "eof":
            raise Failure(
                "the reply came, but the connection stayed open",
                HINT_EOF + " Then " + HINT_CLOSE[0].lower() + HINT_CLOSE[1:],
                sent,
            )


def _judge(data, how, expected, sent, mismatch=HINT_ONE_RECV):
    """Judge a reply; ``mismatch`` is the hint for a wrong one (a function of the reply, or
    a text): echo and line servers go wrong in different ways."""
    if data == expected:
        return
    hint = mismatch(data) if callable(mismatch) else mismatch
    if how == "timeout" and expected.startswith(data):
        raise Failure(
            f"after {show_bytes(data)} nothing more came within {REPLY_TIMEOUT:g} s",
            hint + " " + HINT_EOF if mismatch is HINT_ONE_RECV else hint,
            sent,
        )
    if how == "server-gone" or (how in ("reset", "eof") and not data):
        raise Failure(_stopped(data, how), HINT_LOOP, sent)
    raise Failure(f"got {show_bytes(data)}, expected {show_bytes(expected)}", hint, sent)


def _stopped(data: bytes, how: str) -> str:
    """What happened, in words, when the reply ended early (``data`` is what came)."""
    if how == "server-gone":
        done = "your server stopped"
    elif how == "reset":
        done = "your server reset the connection"
    else:
        done = "your server closed the connection"
    return f"{done} after sending only {show_bytes(data)}" if data else f"{done} before replying"


def _line_ending_hint(data: bytes) -> str:
    """The hint for a wrong reply to b'PING\\r\\n': a '\\r' left in the line, or else lines.

    b'PING\\n' was answered right by the check before, so an error reply here means that
    the command was not recognised: the b'\\r' was left in it."""
    if b"\r" in data or b"\\r" in data or data.startswith(b"ERR"):
        return HINT_CR
    return HINT_LINES


def _one_byte_at_a_time(server, message: bytes, expected: bytes, sent: str, mismatch=HINT_ONE_RECV):
    with connect(server) as sock:
        server.wait_quiet(1.0)  # the server has accepted and waits in recv()
        try:
            for i in range(len(message)):
                sock.sendall(message[i : i + 1])
                server.wait_quiet(1.0)  # the server has read this byte and waits for more
        except OSError:
            pass  # closed early: the reply says why
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data, how = read_reply(sock, server, lambda d: len(d) >= len(expected))
        _judge(data, how, expected, sent, mismatch)


def _reset_then_next(
    server, first: bytes, second: bytes, expected: bytes, sent: str, mismatch=HINT_ONE_RECV
):
    sock = connect(server)
    sock.sendall(first)
    server.wait_quiet(1.0)  # the server has read it (and replied, if it could)
    abort(sock)
    # The server has handled the reset: it is back in accept(), or it has returned.
    server.wait_quiet(1.0)
    if not server.running:
        if server.errors:  # serving() adds "; your server crashed with ..."
            raise Failure(
                f"the client sent {show_bytes(first)} and reset the connection (RST)",
                HINT_RESET,
                sent,
            )
        raise Failure(
            f"the client sent {show_bytes(first)} and reset the connection (RST): your "
            "server returned, it no longer listened",
            HINT_RETURNED,
            sent,
        )
    _conversation(server, second, expected, sent, mismatch=mismatch)


WAVE = 5  # clients connected at the same time: the tutorial's listen(5) queues them all


def _many(server, request_of, expected_of, count=20, mismatch=HINT_ONE_RECV):
    """``count`` clients, ``WAVE`` at a time (each wave once the one before has finished).

    A server that serves one client at a time, as these do, keeps the others waiting in
    the queue of listen(backlog); Linux drops the connection requests beyond it (the
    client retries a second later, then 3 s, ...), which is the backlog at work, not a
    bug of the server. Waves of 5 fit the tutorial's listen(5) and socketserver's 5.
    """

    def talk(index):
        with connect(server, timeout=10.0) as sock:
            send_in_background(sock, request_of(index))
            data, how = read_reply(
                sock, server, lambda d: len(d) >= len(expected_of(index)), timeout=10.0
            )
            _judge(data, how, expected_of(index), f"client {index + 1} of {count}", mismatch)
            return data

    for start in range(0, count, WAVE):
        size = min(WAVE, count - start)
        results = many_clients(size, lambda i, start=start: talk(start + i))
        for index, result in enumerate(results, start):
            if isinstance(result, Failure):
                # many_clients numbers a wave's clients from 1: the number here is the run's
                what = re.sub(r"^client \d+ ", "", result.what)
                raise Failure(
                    f"client {index + 1}: {what}",
                    result.hint
                    or "Some clients waited in vain: with listen(n) at most n connections "
                    "wait for accept() (Linux drops the others' requests, and they retry "
                    "seconds later). Call listen() with 5 or more, and serve each client "
                    "quickly.",
                    f"{count} clients, {WAVE} connected at the same time, each with its own "
                    "message",
                )


SILENT_TIMEOUT = 0.3  # the check shortens a silent client's timeout to this (not 10 s)


def _silent_client(server, case: Scenario) -> None:
    """A client that connects and sends nothing: the connection must have a timeout, and
    when it expires the server closes that connection and serves the next client.

    A timeout of 10 s would make the check wait 10 s, so once the server has set its
    timeout the check shortens it (on the server's own socket): the client sends
    ``case.send`` (b'x' when empty), its reply ``case.expect`` comes, and the server's
    next recv() waits SILENT_TIMEOUT s at most. The next client sends the same.
    """
    probe, reply = case.send or b"x", case.expect or b"x"
    with connect(server) as sock:
        theirs = None
        for _ in range(3):  # the server has accepted, and waits in recv()
            server.wait_quiet(1.0)
            theirs = server_side(server, sock)
            if theirs is not None:
                break
        if theirs is None:
            data, how = read_to_eof(sock, server, timeout=EOF_TIMEOUT)
            raise Failure(
                _stopped(data, how) if how != "timeout" else "your server never accepted it",
                HINT_LOOP,
                case.sent,
            )
        waits = theirs.gettimeout()
        if waits is None:
            del theirs
            raise Failure(
                "the connection socket that accept() returned had no timeout "
                "(conn.gettimeout() was None): a silent client would hold it for ever",
                HINT_TIMEOUT,
                case.sent,
            )
        shortened = waits > SILENT_TIMEOUT  # 0.0 is a non-blocking socket: nothing to shorten
        if shortened:
            theirs.settimeout(SILENT_TIMEOUT)
        del theirs  # holding it would keep the server's socket open after the server closes it
        if shortened:
            sock.sendall(probe)  # the server's next recv() then waits SILENT_TIMEOUT s at most
            data, how = read_reply(sock, server, lambda d: len(d) >= len(reply))
            _judge(data, how, reply, case.sent, mismatch=case.hint)
            data, how = read_to_eof(sock, server, timeout=SILENT_TIMEOUT + EOF_TIMEOUT)
            if data:
                raise Failure(
                    f"after {show_bytes(reply)} came {show_bytes(data)} too",
                    "Send back exactly what you received, nothing more.",
                    case.sent,
                )
            # "timeout": the server set its timeout again (its own 10 s): not waited for here
    _conversation(
        server,
        probe,
        reply,
        f"{case.sent}; then another client sent {show_bytes(probe)}",
        mismatch=case.hint,
    )


def _slow_reader(server, case: Scenario) -> None:
    """A client that sends ``case.send`` and reads the echo only once the server waits:
    the server's socket gets a small send buffer, so the echo has to wait for the client,
    and a send() (with the timeout the task asks for) then sends only part of a chunk."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        sock.settimeout(REPLY_TIMEOUT)
        sock.connect(("127.0.0.1", server.port))
        theirs = None
        for _ in range(3):  # the server has accepted, and waits in recv()
            server.wait_quiet(1.0)
            theirs = server_side(server, sock)
            if theirs is not None:
                break
        if theirs is not None:
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        del theirs
        sender = send_in_background(sock, case.send, shut=True)
        server.wait_quiet(1.0)  # the server waits for the client to read its echo
        data, how = read_reply(sock, server, lambda d: len(d) >= len(case.expect))
        sender.join(REPLY_TIMEOUT)
        if data == case.expect:
            return
        if how in ("timeout", "eof") and len(data) < len(case.expect):
            raise Failure(
                f"only {len(data):,} of {len(case.expect):,} bytes came back",
                HINT_SENDALL,
                case.sent,
            )
        _judge(data, how, case.expect, case.sent)


def _loopback_only(server) -> None:
    host = server.bound_address[0] if server.bound_address else "127.0.0.1"
    if host != "127.0.0.1":
        raise Failure(
            f"it listens on {host!r}: every network interface",
            "Bind ('127.0.0.1', port): '' and '0.0.0.0' mean every network interface, so "
            "other computers on your network could connect too.",
            "where the server's socket is bound",
        )


# --- the servers' cases, as data -----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One case of a server check: ``how`` (an engine below) sends ``send`` and expects
    ``expect``; ``sent`` is how the verdict describes the input, ``hint`` the hint for a
    wrong reply (a text, or a function of the reply)."""

    title: str
    how: Callable[[object, Scenario], None]
    send: object = b""  # bytes; for _line_by_line the lines; for _many a function of the index
    expect: object = b""  # the same shapes as ``send``
    sent: str = ""
    hint: object = HINT_ONE_RECV
    shut: bool = True  # the client shuts down its sending side once it has sent
    extra_hint: str | None = None  # the hint when more than ``expect`` came
    then: bytes = b""  # _reset_then_next: what the next client sends (``expect``: its reply)


def _whole(server, case: Scenario) -> None:
    _conversation(
        server,
        case.send,
        case.expect,
        case.sent,
        shut=case.shut,
        mismatch=case.hint,
        extra_hint=case.extra_hint,
    )


def _bytewise(server, case: Scenario) -> None:
    _one_byte_at_a_time(server, case.send, case.expect, case.sent, mismatch=case.hint)


def _vanishes(server, case: Scenario) -> None:
    _reset_then_next(server, case.send, case.then, case.expect, case.sent, mismatch=case.hint)


def _crowd(server, case: Scenario) -> None:
    _many(server, case.send, case.expect, mismatch=case.hint)


def _bound(server, case: Scenario) -> None:
    _loopback_only(server)


def _server_check(server_func, crash_hint, case: Scenario):
    """The check closure of ``case``: a fresh server of ``server_func``, then the case."""

    def check():
        with serving(server_func, crash_hint) as server:
            case.how(server, case)

    return check


# --- Exercise 1: echo_server --------------------------------------------------------------

# every byte value, in an order that is never valid UTF-8 (it repeats every 256 bytes)
GARBAGE = bytes((i * 167 + 13) % 256 for i in range(256)) * (1 << 12)  # 1 MiB

ECHO_CASES = [
    Scenario(
        "b'hello' comes back, then the end",
        _whole,
        b"hello",
        b"hello",
        "b'hello', then the client shut down its sending side",
    ),
    Scenario("listens on 127.0.0.1 only", _bound),
    Scenario(
        "a message sent one byte at a time",
        _bytewise,
        b"hello",
        b"hello",
        "b'h', b'e', b'l', b'l', b'o' in five sends",
    ),
    Scenario(
        "1 MiB of bytes that are not UTF-8",
        _whole,
        GARBAGE,
        GARBAGE,
        f"{show_bytes(GARBAGE)}, sent while reading the echo",
    ),
    Scenario(
        "a client that vanishes mid-message, then the next client",
        _vanishes,
        b"hel",
        b"next",
        "b'hel', then a reset (RST); then b'next'",
        then=b"next",
    ),
    Scenario(
        "20 clients, 5 connected at the same time",
        _crowd,
        lambda i: b"client %d\n" % i * 50,
        lambda i: b"client %d\n" % i * 50,
    ),
    Scenario(
        "256 KiB to a client that reads only once your server waits",
        _slow_reader,
        GARBAGE[: 256 * 1024],
        GARBAGE[: 256 * 1024],
        "256 KiB; the client reads the echo only once your server waits for it",
    ),
    Scenario(
        "a silent client: its connection times out, then the next client",
        _silent_client,
        sent=f"a client connects and sends nothing (the check shortens your timeout to "
        f"{SILENT_TIMEOUT:g} s, and sends b'x' so that the next recv() waits that long)",
    ),
]


def check_echo_server(echo_server) -> object:
    """Attack ``echo_server(port)``: echo every byte until b'', close, serve the next client."""
    checks = [(case.title, _server_check(echo_server, _crash_hint, case)) for case in ECHO_CASES]
    return run_checks("echo_server", checks)


# --- Exercise 2: handle_command (no sockets) --------------------------------------------------

# (line received, reply due); a reply of "ERR" means any reply that starts with "ERR ",
# a tuple any of its replies.
COMMAND_CASES = [
    ("PING", "PONG"),
    ("ECHO hello world", "hello world"),
    ("ECHO  two spaces  ", " two spaces  "),
    ("ECHO", ("", "ERR")),
    ("ADD 2 3", "5"),
    ("ADD -4 10", "6"),
    ("QUIT", "BYE"),
    ("ADD 2 x", "ERR"),
    ("ADD 1", "ERR"),
    ("FLY away", "ERR"),
    ("", "ERR"),
]

HINT_BAD_INPUT = (
    "A client can send anything: answer bad input with a reply that starts with 'ERR ' "
    "(catch ValueError and IndexError, check the number of words), never crash."
)
HINT_RETURNED_NONE = (
    "Return the reply as a str, without the newline (the server adds it): it returned "
    "None, and every path through the function needs a `return` with the reply."
)
HINT_RETURN_STR = (
    "Return the reply as a str, without the newline (the server adds it): every path "
    "through the function needs a `return`."
)
HINT_PARTITION = (
    "Split the line into the command and the rest at the first space: ECHO answers with "
    "its text exactly as sent, spaces included (command, _, rest = line.partition(' ')); "
    "split() drops spaces."
)
HINT_SPLIT = (
    "Split the line into the command and its arguments; return the reply as str, without "
    "the newline (the server adds it)."
)
ANY_ERR = "a reply that starts with 'ERR '"


def reply_matches(reply, due) -> bool:
    if isinstance(due, tuple):
        return any(reply_matches(reply, one) for one in due)
    if due == "ERR":
        return isinstance(reply, str) and reply.startswith("ERR ")
    return reply == due


def _command_title(line, due) -> str:
    if due == "ERR":
        return f"{line!r} gives an error reply"
    if isinstance(due, tuple):
        return f"{line!r} gives '' or an error reply, without crashing"
    return f"{line!r} gives {due!r}"


def _show_due(due) -> str:
    if due == "ERR":
        return ANY_ERR
    if isinstance(due, tuple):
        return " or ".join(ANY_ERR if d == "ERR" else repr(d) for d in due)
    return repr(due)


def _reply_hint(line, due, result) -> str:
    if result is None:
        return HINT_RETURNED_NONE
    if not isinstance(result, str):
        return HINT_RETURN_STR
    if due == "ERR":
        return HINT_ERR_PREFIX
    if line.startswith("ECHO"):
        return HINT_PARTITION
    return HINT_SPLIT


def _command_case(handle_command, line, due):
    """The check of one row of ``COMMAND_CASES``: ``handle_command(line)`` gives ``due``."""

    def check():
        sent = f"handle_command({line!r})"
        call = call_bounded(handle_command, line)
        can_err = due == "ERR" or (isinstance(due, tuple) and "ERR" in due)
        if call.error is not None:
            hint = (
                HINT_BAD_INPUT if can_err else f"Read the exception: {line!r} should give {due!r}."
            )
            raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
        if not reply_matches(call.result, due):
            raise Failure(
                f"it returned {call.result!r:.60}, expected {_show_due(due)}",
                _reply_hint(line, due, call.result),
                sent,
            )

    return check


def check_handle_command(handle_command) -> object:
    """Check ``handle_command(line) -> reply`` against the protocol table, bytes-free."""
    checks = [
        (_command_title(*case), _command_case(handle_command, *case)) for case in COMMAND_CASES
    ]
    return run_checks("handle_command", checks, function=handle_command)


# --- Exercise 3: command_server ------------------------------------------------------------

HINT_STRICT_UTF8 = (
    "Bytes that are not UTF-8 get the reply 'ERR not UTF-8': decode strictly "
    "(line.decode('utf-8') inside try/except UnicodeDecodeError), not with "
    "errors='replace', which turns bad bytes into '\ufffd' and answers them."
)
HINT_AT_ONCE = (
    "Answer each line as soon as it is complete (keep a buffer, split off each complete "
    "line and answer it at once): the client waits for the reply before it sends the next "
    "line, so do not wait for the end of the input (recv() returning b''). Writing through "
    "conn.makefile()? Call flush() after each reply: it sits in the file's buffer until then."
)
HINT_INCOMPLETE = (
    "b'PIN' had no b'\\n': an incomplete line, maybe cut off mid-command, so it gets no "
    "reply. When recv() returns b'', close; answer only the complete lines in your buffer."
)
HINT_QUIT_ONLY = (
    "Close after the command QUIT (once its reply BYE is sent), not after any reply BYE: "
    "`ECHO BYE` replies BYE too, and the conversation goes on."
)
HINT_NOTHING_YET = (
    "Nothing came back while the connection stayed open. Writing through conn.makefile()? "
    "Its replies sit in the file's buffer until you call flush(): flush after each reply. "
    "Else: " + HINT_LINES
)


def _lines_hint(data: bytes) -> str:
    """HINT_LINES; when nothing came at all, the replies may be waiting in a buffer."""
    return HINT_LINES if data else HINT_NOTHING_YET


HINT_STRIP = (
    "Remove only the line end, line.rstrip(b'\\r\\n') (or line.rstrip('\\r\\n') on the "
    "str): strip() also removes the spaces that belong to the text."
)


def _spaces_hint(data: bytes) -> str:
    return HINT_STRIP if data.strip() == b"hi" else _line_ending_hint(data)


def _garbage_then_ping(server, case: Scenario) -> None:
    """Two lines that are not UTF-8, then b'PING\\n': an error reply for each, then PONG."""
    with connect(server) as sock:
        send_in_background(sock, case.send)
        data, how = read_reply(sock, server, lambda d: d.count(b"\n") >= 3)
        lines = data.split(b"\n")
        if (
            len(lines) >= 4
            and lines[0].startswith(b"ERR ")
            and lines[2] == b"PONG"
            and not lines[1].startswith(b"ERR ")
        ):
            raise Failure(
                f"got {show_bytes(data)}: b'ECHO caf\\xe9' was answered as if it were text",
                HINT_STRICT_UTF8,
                case.sent,
            )
        if len(lines) < 4 or not lines[0].startswith(b"ERR ") or lines[2] != b"PONG":
            hint = _command_crash_hint(UnicodeDecodeError("utf-8", b"", 0, 1, ""))
            raise Failure(f"got {show_bytes(data)}", hint, case.sent)


def _line_by_line(server, case: Scenario) -> None:
    """A client that waits for each reply before it sends the next line, as a person at
    telnet does: nothing ends the input, so only a reply sent at once can come."""
    with connect(server) as sock:
        for line, expected in zip(case.send, case.expect, strict=True):
            try:
                sock.sendall(line)
            except OSError:
                raise Failure(
                    f"the connection was closed before {show_bytes(line)} could be sent",
                    HINT_LOOP,
                    case.sent,
                ) from None
            data, how = read_reply(sock, server, lambda d, e=expected: len(d) >= len(e))
            if data == expected:
                continue
            if not data and how == "timeout":
                raise Failure(
                    f"no reply to {show_bytes(line)} within {REPLY_TIMEOUT:g} s, while the "
                    "client waited with the connection open",
                    HINT_AT_ONCE,
                    case.sent,
                )
            _judge(data, how, expected, case.sent, case.hint)


COMMAND_SERVER_CASES = [
    Scenario("listens on 127.0.0.1 only", _bound),
    Scenario(
        "b'PING\\n' gives b'PONG\\n', and the end after the client's end",
        _whole,
        b"PING\n",
        b"PONG\n",
        "b'PING\\n', then end of sending",
        _lines_hint,
    ),
    Scenario(
        "answers each line at once, while the client waits",
        _line_by_line,
        (b"PING\n", b"ADD 2 3\n", b"QUIT\n"),
        (b"PONG\n", b"5\n", b"BYE\n"),
        "b'PING\\n', then (after its reply) b'ADD 2 3\\n', then b'QUIT\\n'",
        HINT_LINES,
    ),
    Scenario(
        "three commands in one send",
        _whole,
        b"PING\nADD 2 3\nECHO hi\n",
        b"PONG\n5\nhi\n",
        "b'PING\\nADD 2 3\\nECHO hi\\n' in a single send",
        HINT_LINES,
    ),
    Scenario(
        "a command sent one byte at a time",
        _bytewise,
        b"ADD 20 22\n",
        b"42\n",
        "b'ADD 20 22\\n', one byte per send",
        HINT_LINES,
    ),
    Scenario(
        "telnet's line end b'\\r\\n'",
        _whole,
        b"PING\r\n",
        b"PONG\n",
        "b'PING\\r\\n' (telnet and nc -C end lines so)",
        _line_ending_hint,
    ),
    Scenario(
        "garbage that is not UTF-8, then a command",
        _garbage_then_ping,
        b"\xff\xfe\nECHO caf\xe9\nPING\n",
        sent="b'\\xff\\xfe\\n' and b'ECHO caf\\xe9\\n' (not UTF-8), then b'PING\\n' on the "
        "same connection",
    ),
    Scenario(
        "a last line without b'\\n' is incomplete: no reply",
        _whole,
        b"PING\nPIN",
        b"PONG\n",
        "b'PING\\nPIN', then end of sending",
        HINT_LINES,
        extra_hint=HINT_INCOMPLETE,
    ),
    Scenario(
        "spaces stay: only the line end b'\\r\\n' is removed",
        _whole,
        b"ECHO  hi  \r\n",
        b" hi  \n",
        "b'ECHO  hi  \\r\\n'",
        _spaces_hint,
    ),
    Scenario(
        "QUIT: b'BYE\\n', then the server closes",
        _whole,
        b"QUIT\n",
        b"BYE\n",
        "b'QUIT\\n' (the client keeps its side open)",
        HINT_LINES,
        shut=False,
    ),
    Scenario(
        "a client that vanishes mid-line, then the next client",
        _vanishes,
        b"PIN",
        b"PONG\n",
        "b'PIN', then a reset (RST); then b'PING\\n'",
        HINT_LINES,
        then=b"PING\n",
    ),
    Scenario(
        "20 clients, 5 connected at the same time",
        _crowd,
        lambda i: b"ECHO client %d\nQUIT\n" % i,
        lambda i: b"client %d\nBYE\n" % i,
        hint=HINT_LINES,
    ),
    Scenario(
        "ECHO BYE is a reply, not the end: only QUIT closes",
        _whole,
        b"ECHO BYE\nPING\n",
        b"BYE\nPONG\n",
        "b'ECHO BYE\\nPING\\n', then end of sending",
        HINT_QUIT_ONLY,
    ),
    Scenario(
        "a silent client: its connection times out, then the next client",
        _silent_client,
        b"PING\n",
        b"PONG\n",
        f"a client connects and sends nothing (the check shortens your timeout to "
        f"{SILENT_TIMEOUT:g} s, and sends b'PING\\n' so that the next recv() waits that long)",
        HINT_LINES,
    ),
]


def check_command_server(command_server) -> object:
    """Attack ``command_server(port)``: the line protocol over real connections."""
    checks = [
        (case.title, _server_check(command_server, _command_crash_hint, case))
        for case in COMMAND_SERVER_CASES
    ]
    return run_checks("command_server", checks)
