"""Exercises of notebook 03, bytes and streams: each ``check_<name>(function)`` attacks it.

    from helpers.exercises import nb03
    nb03.check_recv_exactly(recv_exactly)       # the verdict shows itself

What each check expects is written as data (the pieces sent, the answer due) or as a
small pure function (``expected_frame``), apart from the sockets that carry it.
"""

from __future__ import annotations

import socket
import struct

from ._checker import (
    CALL_TIMEOUT,
    EOF_TIMEOUT,
    REPLY_TIMEOUT,
    Failure,
    call_bounded,
    call_with_pieces,
    connect,
    connected_pair,
    describe_exception,
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

HINT_ONE_RECV = (
    "recv(n) returns *up to* n bytes: whatever has arrived so far. Call it in a loop, "
    "asking each time for the bytes still missing, until you have them all."
)
HINT_ASK_MISSING = (
    "Ask recv only for the bytes still missing: recv(n - len(data)). After a partial "
    "read, a recv(n) takes up to n more bytes: the start of the next message."
)
HINT_EOF_LOOP = (
    "Once the peer has closed, recv() returns b'' at once, forever: check `if not chunk:` "
    "(compare with b'', not '') and stop."
)
HINT_DECODE_WHOLE = (
    "A UTF-8 character can be split between two reads: decode the whole message once it "
    "has all arrived, not each chunk (or use codecs.getincrementaldecoder('utf-8')())."
)
HINT_BYTES_UPPER = (
    "bytes.upper() changes only the ASCII letters a-z, so 'é' stays 'é': decode the whole "
    "message, take str.upper() of the text, then encode the result: "
    "data.decode('utf-8').upper().encode('utf-8')."
)
HINT_TIMEOUT = (
    "Set a timeout on each connection socket before sending: conn.settimeout(5) right "
    "after accept(). Without one, a client that stops reading blocks your server in send() "
    "forever, and no other client is served."
)


def _unexpected(call, what_it_should: str) -> Failure:
    return Failure(
        f"it raised {describe_exception(call.error)}",
        f"Read the exception above: your function should {what_it_should}.",
    )


# --- Exercise 1: recv_exactly -----------------------------------------------------------


def _expect_bytes(result, expected: bytes, sent: str) -> None:
    returned_none(result, sent)
    if not isinstance(result, bytes | bytearray):
        raise Failure(
            f"it returned {type(result).__name__} {result!r:.60}",
            "Return the bytes you received (a bytes object), joined together.",
            sent,
        )
    if bytes(result) != expected:
        if bytes(result).startswith(expected):
            raise Failure(
                f"it returned {len(result)} bytes, {show_bytes(result)}, for n = "
                f"{len(expected)}: it read into what came after",
                HINT_ASK_MISSING,
                sent,
            )
        if expected.startswith(bytes(result)):
            raise Failure(
                f"it returned {show_bytes(result)}: only what had arrived so far",
                HINT_ONE_RECV,
                sent,
            )
        raise Failure(f"it returned {show_bytes(result)}", HINT_ONE_RECV, sent)


def check_recv_exactly(recv_exactly) -> object:
    """Attack ``recv_exactly(sock, n)``: it must return exactly n bytes, or raise at EOF."""

    def exchange(pieces, n, close_after=False, timeout=CALL_TIMEOUT):
        with connected_pair() as (learner, attacker):
            call = call_with_pieces(
                recv_exactly,
                learner,
                attacker,
                pieces,
                n,
                close_after=close_after,
                timeout=timeout,
            )
            left = b""
            if call.finished and call.error is None:
                learner.settimeout(0.5)
                attacker.shutdown(socket.SHUT_WR)
                left = _drain(learner)
            return call, left

    def pieces_check(pieces, n, sent):
        def check():
            call, _ = exchange(pieces, n)
            if not call.finished:
                if call.sent >= n:
                    what = f"it had not returned after {CALL_TIMEOUT:g} s, though all {n} bytes were sent"
                    hint = "Stop as soon as you have n bytes: loop `while len(data) < n`."
                else:
                    what = (
                        f"it had not returned after {CALL_TIMEOUT:g} s; {call.sent} of the {n} "
                        "bytes had been sent, the next one waits until your function has read "
                        "those"
                    )
                    hint = (
                        "Your function waited for more bytes than had arrived without reading "
                        "what was there: call recv(n - len(data)) in a loop, each call returns "
                        "what has arrived so far."
                    )
                raise Failure(what, hint, sent)
            if call.error is not None:
                raise _unexpected(call, f"return {n} bytes")
            _expect_bytes(call.result, b"".join(pieces)[:n], sent)

        return check

    def leaves_the_rest(pieces, sent):
        def check():
            call, left = exchange(pieces, 5)
            if not call.finished:
                raise Failure(
                    f"it had not returned after {CALL_TIMEOUT:g} s, though 5 bytes had been sent",
                    "Stop as soon as you have n bytes: loop `while len(data) < n`.",
                    sent,
                )
            if call.error is not None:
                raise _unexpected(call, "return 5 bytes")
            _expect_bytes(call.result, b"hello", sent)
            if left != b" world":
                raise Failure(
                    "the bytes after the first 5 were gone from the socket "
                    f"(left: {show_bytes(left)})",
                    HINT_ASK_MISSING,
                    sent,
                )

        return check

    def closed_early():
        sent = "b'abc', then the peer closed; recv_exactly(sock, 5)"
        call, _ = exchange([b"abc"], 5, close_after=True, timeout=EOF_TIMEOUT)
        if not call.finished:
            raise Failure(
                f"it was still running {EOF_TIMEOUT:g} s after the peer had closed",
                HINT_EOF_LOOP + " Then raise EOFError: the missing bytes will never come.",
                sent,
            )
        if call.error is None:
            raise Failure(
                f"it returned {call.result!r:.60} instead of raising",
                "When recv returns b'' before you have n bytes, the peer has closed and the "
                "rest will never come: raise EOFError('connection closed') instead of "
                "returning a short result.",
                sent,
            )
        if not isinstance(call.error, EOFError):
            raise Failure(
                f"it raised {describe_exception(call.error)}, not EOFError",
                "Raise EOFError itself when recv returns b'' too early: the exercise asks "
                "for it, and recv_message and its callers catch EOFError, not other errors.",
                sent,
            )

    big = bytes(range(256)) * 4096
    return run_checks(
        "recv_exactly",
        [
            ("5 bytes sent at once", pieces_check([b"hello"], 5, "b'hello' in one send")),
            (
                "5 bytes sent one byte at a time",
                pieces_check([b"h", b"e", b"l", b"l", b"o"], 5, "b'h', b'e', b'l', b'l', b'o'"),
            ),
            (
                "a message that stalls halfway, then continues",
                pieces_check([b"hel", b"lo"], 5, "b'hel', a pause, then b'lo'"),
            ),
            ("1 MiB, more than one recv returns", pieces_check([big], len(big), "1048576 bytes")),
            (
                "leaves the bytes after the n-th in the socket",
                leaves_the_rest(
                    [b"hello world"], "b'hello world' in one send, then recv_exactly(sock, 5)"
                ),
            ),
            (
                "stops at the n-th byte when the rest comes with the next message",
                leaves_the_rest(
                    [b"hel", b"lo world"],
                    "b'hel', a pause, then b'lo world'; recv_exactly(sock, 5)",
                ),
            ),
            ("raises EOFError when the peer closes too early", closed_early),
        ],
        function=recv_exactly,
    )


def _drain(sock) -> bytes:
    data = b""
    try:
        while chunk := socket.socket.recv(sock, 4096):
            data += chunk
    except OSError:
        pass
    return data


# --- Exercise 2: encode_message -----------------------------------------------------------


def expected_frame(text: str) -> bytes:
    """The frame of ``text``: 4-byte big-endian length of its UTF-8 bytes, then the bytes."""
    payload = text.encode("utf-8")
    return struct.pack("!I", len(payload)) + payload


def _header_text(frame: bytes) -> str:
    """The first 4 bytes as a number: b'\\x00\\x00\\x00\\n' gives "header 00:00:00:0a = 10"."""
    if len(frame) < 4:
        return f"only {len(frame)} bytes, too short for a 4-byte header"
    header = frame[:4]
    return f"header {header.hex(':')} = {struct.unpack('!I', header)[0]}"


def check_encode_message(encode_message) -> object:
    """Check ``encode_message(text) -> bytes`` (a pure function: no socket needed)."""

    def case(text):
        def check():
            sent = f"encode_message({text!r:.40})"
            call = call_bounded(encode_message, text)
            if call.error is not None:
                if "format requires" in str(call.error) or "argument out of range" in str(
                    call.error
                ):
                    raise Failure(
                        f"it raised {describe_exception(call.error)}",
                        "Your header is 2 bytes ('!H', lengths up to 65535); the exercise "
                        "asks for 4: struct format '!I' (lengths up to 4 GiB).",
                        sent,
                    )
                raise _unexpected(call, "return the frame as bytes")
            result, expected = call.result, expected_frame(text)
            returned_none(result, sent)
            if not isinstance(result, bytes | bytearray):
                raise Failure(
                    f"it returned {type(result).__name__}",
                    "A frame is bytes: struct.pack(...) + text.encode('utf-8').",
                    sent,
                )
            result = bytes(result)
            if result == expected:
                return
            header = result[:4]
            payload = text.encode("utf-8")
            if len(payload) < 65536 and result == struct.pack("!H", len(payload)) + payload:
                hint = (
                    "Your header is 2 bytes ('!H', lengths up to 65535); the exercise asks "
                    "for 4: struct format '!I' (lengths up to 4 GiB)."
                )
            elif header == expected[:4][::-1] and result[4:] == expected[4:]:
                hint = (
                    "Your length is little-endian; network order is big-endian: '!I' (the "
                    "'!' makes it the same on every machine)."
                )
            elif header == struct.pack("!I", len(text)) and result[4:] == expected[4:]:
                hint = (
                    "The length counts characters, but the receiver counts bytes: 'é' and "
                    "'✓' take 2 and 3 bytes in UTF-8. Encode first, then take len() of "
                    "the bytes."
                )
            else:
                hint = "Expected struct.pack('!I', len(data)) + data, with data = text.encode()."
            raise Failure(
                f"it returned {show_bytes(result)} ({_header_text(result)}), expected "
                f"{show_bytes(expected)} ({_header_text(expected)})",
                hint,
                sent,
            )

        return check

    return run_checks(
        "encode_message",
        [
            ("'hi' becomes b'\\x00\\x00\\x00\\x02hi'", case("hi")),
            ("the empty message", case("")),
            ("'héllo ✓': the length counts bytes, not characters", case("héllo ✓")),
            ("a message of 70000 characters (longer than 65535)", case("x" * 70000)),
        ],
        function=encode_message,
    )


# --- Exercise 3: recv_message ------------------------------------------------------------------


def check_recv_message(recv_message) -> object:
    """Attack ``recv_message(sock) -> str``: one framed message per call."""

    def calls(pieces, how_many, close_after=False, timeout=CALL_TIMEOUT):
        results = []
        with connected_pair() as (learner, attacker):

            def several(sock):
                for _ in range(how_many):
                    results.append(recv_message(sock))

            call = call_with_pieces(
                several, learner, attacker, pieces, close_after=close_after, timeout=timeout
            )
            call.asked = list(learner.asked)
        return call, results

    def expect(pieces, texts, sent):
        def check():
            call, results = calls(pieces, len(texts))
            little = {
                struct.unpack("<I", struct.pack("!I", len(t.encode("utf-8"))))[0] for t in texts
            } - {len(t.encode("utf-8")) for t in texts}
            if little & set(call.asked):
                raise Failure(
                    "after the header, it asked for "
                    f"{max(little & set(call.asked))} bytes: the length read in the wrong "
                    "byte order",
                    "The length is big-endian (network order): struct.unpack('!I', header). "
                    "'<I' (little-endian) or 'I' (this machine's order) read b'\\x00\\x00"
                    "\\x00\\x05' as 83886080.",
                    sent,
                )
            for got, due in zip(results, texts, strict=False):
                if due and isinstance(got, str) and got != due and got.startswith(due):
                    raise Failure(
                        f"it returned {got!r:.40} for the {len(due.encode())}-byte message "
                        f"{due!r:.20}: it read into the next message",
                        "Read the body with recv_exactly(sock, length), whose recv calls ask only "
                        "for the bytes still missing, recv(n - len(data)): a bigger recv "
                        "swallows the start of the next message.",
                        sent,
                    )
            if not call.finished:
                raise Failure(
                    f"after returning {results!r:.60}, it was still waiting for bytes",
                    "Read exactly the 4 header bytes, then exactly `length` bytes, with "
                    "recv_exactly, each recv asking only for the bytes still missing: a "
                    "bigger recv swallows the start of the next message.",
                    sent,
                )
            if call.error is not None:
                if isinstance(call.error, UnicodeDecodeError):
                    raise Failure(
                        f"it raised {describe_exception(call.error)}", HINT_DECODE_WHOLE, sent
                    )
                if "unpack requires" in str(call.error):
                    raise Failure(
                        f"it raised {describe_exception(call.error)}",
                        "Read the header with recv_exactly(sock, 4): the 4 header bytes may "
                        "arrive in pieces, and one recv returns only what has arrived.",
                        sent,
                    )
                raise _unexpected(call, "return the message as str")
            if results and None in results:
                returned_none(None, sent)
            if results != texts:
                raise Failure(
                    f"it returned {results!r:.80}, expected {texts!r:.80}",
                    "Read the header with recv_exactly(sock, 4), unpack the length with "
                    "struct.unpack('!I', header), then recv_exactly(sock, length).decode().",
                    sent,
                )

        return check

    def closed_mid_frame():
        sent = "the header of a 10-byte message and 3 bytes, then the peer closed"
        pieces = [struct.pack("!I", 10) + b"abc"]
        call, _ = calls(pieces, 1, close_after=True, timeout=EOF_TIMEOUT)
        if not call.finished:
            raise Failure(
                f"it was still running {EOF_TIMEOUT:g} s after the peer had closed",
                HINT_EOF_LOOP,
                sent,
            )
        if call.error is None:
            raise Failure(
                "it returned instead of raising",
                "The message is incomplete: let recv_exactly raise EOFError.",
                sent,
            )

    one = expected_frame("héllo")
    hello = expected_frame("hello")
    big_text = "ü" * 300_000
    return run_checks(
        "recv_message",
        [
            ("one message sent at once", expect([expected_frame("hello")], ["hello"], "one frame")),
            (
                "a message sent one byte at a time ('é' split in two)",
                expect(
                    [one[i : i + 1] for i in range(len(one))],
                    ["héllo"],
                    f"{show_bytes(one)}, one byte per send",
                ),
            ),
            (
                "two messages in one send",
                expect(
                    [expected_frame("one") + expected_frame("two")],
                    ["one", "two"],
                    "the frames of 'one' and 'two' in a single send",
                ),
            ),
            (
                "a message cut after 2 bytes of text, the rest sent with the next message",
                expect(
                    [hello[:6], hello[6:] + expected_frame("next")],
                    ["hello", "next"],
                    "the header of 'hello' and b'he', a pause, then b'llo' and the frame of 'next'",
                ),
            ),
            (
                "a message of 600000 bytes",
                expect([expected_frame(big_text)], [big_text], "the frame of 'ü' * 300000"),
            ),
            ("raises when the peer closes mid-message", closed_mid_frame),
        ],
        function=recv_message,
    )


# --- Exercise 4: upper_server ---------------------------------------------------------------


def _upper_crash(exc):
    if isinstance(exc, UnicodeDecodeError):
        return HINT_DECODE_WHOLE
    return None


def check_upper_server(upper_server) -> object:
    """Attack ``upper_server(port)``: read until b'', reply in capitals, close."""

    def ask(pieces, expected, sent):
        with serving(upper_server, _upper_crash) as server, connect(server) as sock:
            if len(pieces) == 1:
                send_in_background(sock, pieces[0])
            else:
                server.wait_quiet(1.0)  # the server has accepted and waits in recv()
                try:
                    for piece in pieces:
                        sock.sendall(piece)
                        server.wait_quiet(1.0)  # the server has read it and waits for more
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the server closed early: what it replied tells why
            _expect_reply_then_eof(sock, server, expected, sent, request=b"".join(pieces))

    text = "héllo wörld"
    data = text.encode()

    def one_after_another():
        with serving(upper_server, _upper_crash) as server:
            for i in range(3):
                with connect(server) as sock:
                    request = f"client {i}".encode()
                    sock.sendall(request)
                    sock.shutdown(socket.SHUT_WR)
                    _expect_reply_then_eof(
                        sock,
                        server,
                        request.upper(),
                        f"three clients, client {i + 1}",
                        request=request,
                    )

    return run_checks(
        "upper_server",
        [
            (
                "b'hello' comes back as b'HELLO', then the end",
                lambda: ask(
                    [b"hello"], b"HELLO", "b'hello', then the client shut down its sending side"
                ),
            ),
            (
                "text sent one byte at a time ('é' split in two)",
                lambda: ask(
                    [data[i : i + 1] for i in range(len(data))],
                    text.upper().encode(),
                    f"{show_bytes(data)}, one byte per send",
                ),
            ),
            ("three clients, one after another", one_after_another),
        ],
    )


def _expect_reply_then_eof(sock, server, expected, sent, big=False, request=None):
    data, how = read_reply(sock, server, lambda d: len(d) >= len(expected))
    if data != expected:
        _judge_reply(data, how, expected, sent, big, request)
    _, how = read_to_eof(sock, server, timeout=EOF_TIMEOUT)
    if how != "eof":
        raise Failure(
            "the reply came, but the connection stayed open",
            "Close the client's socket (conn.close()) once you have replied, so that the "
            "client sees the end of the reply.",
            sent,
        )


# --- Exercise 5: download_server -------------------------------------------------------------

BIG_SIZE = 6 * 1024 * 1024


def check_download_server(download_server) -> object:
    """Attack ``download_server(port, data)``: send ``data`` to each client, then close."""

    def download(data, sent, rcvbuf=None, clients=1):
        with serving(download_server, args=(data,)) as server:
            for _ in range(clients):
                with socket.socket() as sock:
                    if rcvbuf:
                        # A small receive window: the data cannot all be in flight at once,
                        # so a single send() on a socket with a timeout returns early.
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                    sock.settimeout(5.0)
                    try:
                        server.wait_quiet(5.0, deadlines=False)  # see _checker.connect
                        if not still_listens(server):
                            raise ConnectionRefusedError
                        sock.connect(("127.0.0.1", server.port))
                    except ConnectionRefusedError:
                        raise Failure(
                            "the second client was refused: your server had stopped",
                            "Serve client after client: accept() in a `while True:` loop.",
                            sent,
                        ) from None
                    _expect_reply_then_eof(sock, server, data, sent, big=len(data) > 1 << 20)

    big = b"0123456789abcdef" * (BIG_SIZE // 16)

    def has_timeout():
        sent = "data = 6 MiB; the client reads nothing until it has looked at the connection"
        with serving(download_server, args=(big,)) as server, socket.socket() as sock:
            # A small receive window: the server is still in sendall() while we look.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.settimeout(5.0)
            sock.connect(("127.0.0.1", server.port))
            first, how = read_reply(sock, server, lambda d: len(d) > 0)
            if not first:
                _judge_reply(first, how, big, sent, big=True)
            # Bytes have arrived, so the server has accepted (and set its timeout) by now.
            conn = server_side(server, sock)
            if conn is None:
                raise Failure(
                    "your server closed the connection before it had sent all of data",
                    "Send all of data with conn.sendall(data), then close the connection.",
                    sent,
                )
            if conn.gettimeout() is None:
                read_to_eof(sock, server)  # let the server finish: no reset, no crash noise
                raise Failure(
                    "the connection socket that accept() returned had no timeout "
                    "(conn.gettimeout() was None)",
                    HINT_TIMEOUT,
                    sent,
                )
            _expect_reply_then_eof(sock, server, big[len(first) :], sent, big=True)

    return run_checks(
        "download_server",
        [
            ("a client gets b'hello', then the end", lambda: download(b"hello", "data = b'hello'")),
            (
                "a client that reads with a small buffer gets all 6 MiB",
                lambda: download(
                    big, "data = 6 MiB, read by a client with SO_RCVBUF = 16 KiB", rcvbuf=16384
                ),
            ),
            (
                "three clients, one after another",
                lambda: download(
                    b"hello", "data = b'hello', three clients one after another", clients=3
                ),
            ),
            (
                "the connection socket accept() returned has a timeout (conn.settimeout)",
                has_timeout,
            ),
        ],
    )


def upper_of_bytes_only(reply: bytes, request: bytes, expected: bytes) -> bool:
    """True when ``reply`` is ``request`` capitalised byte-wise (bytes.upper()): right for
    the ASCII letters, while non-ASCII letters such as 'é' kept their case."""
    if reply == request.upper():
        return True
    try:
        text, due = reply.decode("utf-8"), expected.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return (
        len(text) == len(due)
        and text != due
        and all(
            a == b or (not a.isascii() and a.upper() == b) for a, b in zip(text, due, strict=True)
        )
    )


def _the_reply(data: bytes, expected: bytes) -> str:
    if not data:
        return f"the connection closed before any reply came (expected {show_bytes(expected)})"
    return f"the reply was {show_bytes(data)}, expected {show_bytes(expected)}"


def _judge_reply(data, how, expected, sent, big=False, request=None):
    if how == "timeout":
        raise Failure(
            f"no complete reply within {REPLY_TIMEOUT:g} s (got {show_bytes(data)})",
            HINT_EOF_LOOP + " The client has finished sending when recv returns b''."
            if request is not None
            else "Send all of data at once with conn.sendall(data), then close the connection.",
            sent,
        )
    if how == "server-gone":
        raise Failure(
            f"the server stopped after replying {show_bytes(data)}"
            if data
            else "the server stopped before replying anything",
            "Keep serving: accept clients in a `while True:` loop.",
            sent,
        )
    if big and expected.startswith(data) and data:
        raise Failure(
            f"only {len(data)} of {len(expected)} bytes came back",
            "send() may send only part of the data (it returns how much): with a timeout set "
            "on the socket it often does. Use sendall(), which loops until all is sent.",
            sent,
        )
    if request is None:  # download_server: it sends data as given, it reads nothing
        raise Failure(
            _the_reply(data, expected),
            "Send exactly the data you are given, all of it (conn.sendall(data)), then close.",
            sent,
        )
    if data and upper_of_bytes_only(data, request, expected):
        raise Failure(
            _the_reply(data, expected),
            HINT_BYTES_UPPER,
            sent,
        )
    raise Failure(
        _the_reply(data, expected),
        "Read until recv returns b'' (the client has finished), then reply once: one recv "
        "is not the whole message. " + HINT_DECODE_WHOLE.split(":")[0] + ".",
        sent,
    )
