"""Exercises of notebook 04, echo and protocols: each ``check_<name>(function)`` attacks it.

    from helpers.exercises import nb04
    nb04.check_echo_server(echo_server)

The line protocol's expected replies are a table of data (``COMMAND_CASES``); the checks
of ``handle_command`` use no socket at all, those of the servers send the same lines
through real connections, whole, in pieces, mixed with garbage, from many clients.
"""

from __future__ import annotations

import socket

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
HINT_CLOSE = (
    "Close the client's socket (conn.close(), or `with conn:`) when the conversation is "
    "over, so that the client sees the end."
)
HINT_EOF = "When recv returns b'' the client has finished: leave the loop (`if not data: break`)."


def _crash_hint(exc):
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
    server, request: bytes, expected: bytes, sent: str, shut=True, mismatch=HINT_ONE_RECV
):
    """Send ``request`` (while reading), expect exactly ``expected`` and then the end."""
    with connect(server) as sock:
        send_in_background(sock, request, shut=shut)
        data, how = read_reply(sock, server, lambda d: len(d) >= len(expected))
        _judge(data, how, expected, sent, mismatch)
        _, how = read_to_eof(sock, server, timeout=EOF_TIMEOUT)
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
        raise Failure(f"your server stopped after sending {show_bytes(data)}", HINT_LOOP, sent)
    raise Failure(f"got {show_bytes(data)}, expected {show_bytes(expected)}", hint, sent)


def _line_ending_hint(data: bytes) -> str:
    """The hint for a wrong reply to b'PING\\r\\n': a '\\r' left in the line, or else lines."""
    if b"\r" in data or b"\\r" in data:  # raw, or as repr() shows it: 'PING\\r'
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
    _conversation(server, second, expected, sent, mismatch=mismatch)


def _many(server, request_of, expected_of, count=20, mismatch=HINT_ONE_RECV):
    def talk(index):
        with connect(server, timeout=10.0) as sock:
            send_in_background(sock, request_of(index))
            data, how = read_reply(
                sock, server, lambda d: len(d) >= len(expected_of(index)), timeout=10.0
            )
            _judge(data, how, expected_of(index), f"client {index + 1} of {count}", mismatch)
            return data

    for index, result in enumerate(many_clients(count, talk)):
        if isinstance(result, Failure):
            raise Failure(
                f"client {index + 1}: {result.what}",
                result.hint
                or "With listen(5) extra clients wait in line for seconds (Linux does not "
                "refuse them): call listen() without a number for a longer queue.",
                f"{count} clients connected at once, each with its own message",
            )


# --- Exercise 1: echo_server --------------------------------------------------------------


def check_echo_server(echo_server) -> object:
    """Attack ``echo_server(port)``: echo every byte until b'', close, serve the next client."""
    garbage = bytes(  # every byte value, in an order that is never valid UTF-8
        (i * 167 + 13) % 256 for i in range(1 << 20)
    )

    def run(body):
        def check():
            with serving(echo_server, _crash_hint) as server:
                body(server)

        return check

    return run_checks(
        "echo_server",
        [
            (
                "b'hello' comes back, then the end",
                run(
                    lambda s: _conversation(
                        s,
                        b"hello",
                        b"hello",
                        "b'hello', then the client shut down its sending side",
                    )
                ),
            ),
            (
                "a message sent one byte at a time",
                run(
                    lambda s: _one_byte_at_a_time(
                        s, b"hello", b"hello", "b'h', b'e', b'l', b'l', b'o' in five sends"
                    )
                ),
            ),
            (
                "1 MiB of bytes that are not UTF-8",
                run(
                    lambda s: _conversation(
                        s, garbage, garbage, f"{show_bytes(garbage)}, sent while reading the echo"
                    )
                ),
            ),
            (
                "a client that vanishes mid-message, then the next client",
                run(
                    lambda s: _reset_then_next(
                        s, b"hel", b"next", b"next", "b'hel', then a reset (RST); then b'next'"
                    )
                ),
            ),
            (
                "20 clients at once",
                run(
                    lambda s: _many(
                        s, lambda i: b"client %d\n" % i * 50, lambda i: b"client %d\n" % i * 50
                    )
                ),
            ),
        ],
    )


# --- Exercise 2: handle_command (no sockets) --------------------------------------------------

# (line received, reply due); a reply of "ERR" means any reply that starts with "ERR ".
COMMAND_CASES = [
    ("PING", "PONG"),
    ("ECHO hello world", "hello world"),
    ("ADD 2 3", "5"),
    ("ADD -4 10", "6"),
    ("QUIT", "BYE"),
    ("ADD 2 x", "ERR"),
    ("ADD 1", "ERR"),
    ("FLY away", "ERR"),
    ("", "ERR"),
]


def reply_matches(reply, due: str) -> bool:
    if due == "ERR":
        return isinstance(reply, str) and reply.startswith("ERR ")
    return reply == due


def check_handle_command(handle_command) -> object:
    """Check ``handle_command(line) -> reply`` against the protocol table, bytes-free."""

    def case(line, due):
        def check():
            sent = f"handle_command({line!r})"
            call = call_bounded(handle_command, line)
            if call.error is not None:
                hint = (
                    "A client can send anything: answer bad input with a reply that starts "
                    "with 'ERR ' (catch ValueError, check the number of words), never crash."
                    if due == "ERR"
                    else f"Read the exception: {line!r} should give {due!r}."
                )
                raise Failure(f"it raised {describe_exception(call.error)}", hint, sent)
            if not reply_matches(call.result, due):
                expected = "a reply that starts with 'ERR '" if due == "ERR" else repr(due)
                if not isinstance(call.result, str):
                    hint = (
                        "Return the reply as a str, without the newline (the server adds "
                        "it): every path through the function needs a `return`."
                    )
                elif due == "ERR":
                    hint = HINT_ERR_PREFIX
                else:
                    hint = (
                        "Split the line into the command and its arguments; return the reply "
                        "as str, without the newline (the server adds it)."
                    )
                raise Failure(f"it returned {call.result!r:.60}, expected {expected}", hint, sent)

        return check

    return run_checks(
        "handle_command",
        [
            (
                f"{line!r} gives {due!r}" if due != "ERR" else f"{line!r} gives an error reply",
                case(line, due),
            )
            for line, due in COMMAND_CASES
        ],
    )


# --- Exercise 3: command_server ------------------------------------------------------------


def check_command_server(command_server) -> object:
    """Attack ``command_server(port)``: the line protocol over real connections."""

    def run(body):
        def check():
            with serving(command_server, _command_crash_hint) as server:
                body(server)

        return check

    def garbage_then_ping(server):
        sent = "b'\\xff\\xfe\\n' (not UTF-8), then b'PING\\n' on the same connection"
        with connect(server) as sock:
            send_in_background(sock, b"\xff\xfe\nPING\n")
            data, how = read_reply(sock, server, lambda d: d.count(b"\n") >= 2)
            lines = data.split(b"\n")
            if len(lines) < 3 or not lines[0].startswith(b"ERR ") or lines[1] != b"PONG":
                hint = _command_crash_hint(UnicodeDecodeError("utf-8", b"", 0, 1, ""))
                raise Failure(f"got {show_bytes(data)}", hint, sent)

    return run_checks(
        "command_server",
        [
            (
                "b'PING\\n' gives b'PONG\\n', and the end after the client's end",
                run(
                    lambda s: _conversation(
                        s,
                        b"PING\n",
                        b"PONG\n",
                        "b'PING\\n', then end of sending",
                        mismatch=HINT_LINES,
                    )
                ),
            ),
            (
                "three commands in one send",
                run(
                    lambda s: _conversation(
                        s,
                        b"PING\nADD 2 3\nECHO hi\n",
                        b"PONG\n5\nhi\n",
                        "b'PING\\nADD 2 3\\nECHO hi\\n' in a single send",
                        mismatch=HINT_LINES,
                    )
                ),
            ),
            (
                "a command sent one byte at a time",
                run(
                    lambda s: _one_byte_at_a_time(
                        s,
                        b"ADD 20 22\n",
                        b"42\n",
                        "b'ADD 20 22\\n', one byte per send",
                        mismatch=HINT_LINES,
                    )
                ),
            ),
            (
                "telnet's line end b'\\r\\n'",
                run(
                    lambda s: _conversation(
                        s,
                        b"PING\r\n",
                        b"PONG\n",
                        "b'PING\\r\\n' (telnet and nc -C end lines so)",
                        mismatch=_line_ending_hint,
                    )
                ),
            ),
            ("garbage that is not UTF-8, then a command", run(garbage_then_ping)),
            (
                "QUIT: b'BYE\\n', then the server closes",
                run(
                    lambda s: _conversation(
                        s,
                        b"QUIT\n",
                        b"BYE\n",
                        "b'QUIT\\n' (the client keeps its side open)",
                        shut=False,
                        mismatch=HINT_LINES,
                    )
                ),
            ),
            (
                "a client that vanishes mid-line, then the next client",
                run(
                    lambda s: _reset_then_next(
                        s,
                        b"PIN",
                        b"PING\n",
                        b"PONG\n",
                        "b'PIN', then a reset (RST); then b'PING\\n'",
                        mismatch=HINT_LINES,
                    )
                ),
            ),
            (
                "20 clients at once",
                run(
                    lambda s: _many(
                        s,
                        lambda i: b"ECHO client %d\nQUIT\n" % i,
                        lambda i: b"client %d\nBYE\n" % i,
                        mismatch=HINT_LINES,
                    )
                ),
            ),
        ],
    )
