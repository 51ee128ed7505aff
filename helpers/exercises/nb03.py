"""Exercises of notebook 03, bytes and streams: each ``check_<name>(function)`` attacks it.

    from helpers.exercises import nb03
    nb03.check_recv_exactly(recv_exactly)       # the verdict shows itself

What each check expects is written as data (the pieces sent, the answer due) or as a
small pure function (``expected_frame``), apart from the sockets that carry it. The cases
are tables: ``EXACTLY_CASES`` and ``REST_CASES`` (recv_exactly), ``ENCODE_CASES``,
``MESSAGE_CASES``, ``UPPER_CASES`` and ``DOWNLOAD_CASES``; one engine function per kind of
case (``_exactly_case``, ``_encode_case``, ...) turns a case into a check, and each
``check_<name>`` builds its checks from its table (plus its one-off checks) in order.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

from ._checker import (
    CALL_TIMEOUT,
    EOF_TIMEOUT,
    REPLY_TIMEOUT,
    Failure,
    abort,
    call_bounded,
    call_with_pieces,
    connect,
    connected_pair,
    describe_exception,
    name_error_hint,
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
    # a NameError after a restart (another exercise's cell not run again) gets its cause
    named = name_error_hint(call.error) if isinstance(call.error, NameError) else None
    return Failure(
        f"it raised {describe_exception(call.error)}",
        named or f"Read the exception: your function should {what_it_should}.",
    )


# --- Exercise 1: recv_exactly -----------------------------------------------------------

HINT_STOP_AT_N = "Stop as soon as you have n bytes: loop `while len(data) < n`."
HINT_READ_WHAT_ARRIVED = (
    "Your function waited for more bytes than had arrived without reading what was there: "
    "call recv(n - len(data)) in a loop, each call returns what has arrived so far."
)
HINT_RAISE_EOF = (
    "When recv returns b'' before you have n bytes, the peer has closed and the rest will "
    "never come: raise EOFError('connection closed') instead of returning a short result."
)
HINT_EOFERROR_ITSELF = (
    "Raise EOFError itself when recv returns b'' too early: the exercise asks for it, and "
    "recv_message and its callers catch EOFError, not other errors."
)
MIB_OF_BYTES = bytes(range(256)) * 4096

# (title, pieces sent, n, input shown): recv_exactly(sock, n) must return the first n bytes
EXACTLY_CASES = [
    ("5 bytes sent at once", [b"hello"], 5, "b'hello' in one send"),
    (
        "5 bytes sent one byte at a time",
        [b"h", b"e", b"l", b"l", b"o"],
        5,
        "b'h', b'e', b'l', b'l', b'o'",
    ),
    (
        "a message that stalls halfway, then continues",
        [b"hel", b"lo"],
        5,
        "b'hel', a pause, then b'lo'",
    ),
    ("1 MiB, more than one recv returns", [MIB_OF_BYTES], len(MIB_OF_BYTES), "1048576 bytes"),
]
# (title, pieces sent, n, input shown): the first n bytes come back, the rest stays unread
REST_CASES = [
    (
        "leaves the bytes after the n-th in the socket",
        [b"hello world"],
        5,
        "b'hello world' in one send, then recv_exactly(sock, 5)",
    ),
    (
        "stops at the n-th byte when the rest comes with the next message",
        [b"hel", b"lo world"],
        5,
        "b'hel', a pause, then b'lo world'; recv_exactly(sock, 5)",
    ),
]


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


def _exchange(recv_exactly, pieces, n, close_after=False, timeout=CALL_TIMEOUT):
    """Feed ``pieces`` to ``recv_exactly(sock, n)``; return the call and the bytes it left."""
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


def _exactly_case(recv_exactly, pieces, n, sent):
    def check():
        call, _ = _exchange(recv_exactly, pieces, n)
        if not call.finished:
            if call.sent >= n:
                what = (
                    f"it had not returned after {CALL_TIMEOUT:g} s, though all {n} bytes were sent"
                )
                hint = HINT_STOP_AT_N
            else:
                what = (
                    f"it had not returned after {CALL_TIMEOUT:g} s; {call.sent} of the {n} "
                    "bytes had been sent, the next one waits until your function has read "
                    "those"
                )
                hint = HINT_READ_WHAT_ARRIVED
            raise Failure(what, hint, sent)
        if call.error is not None:
            raise _unexpected(call, f"return {n} bytes")
        _expect_bytes(call.result, b"".join(pieces)[:n], sent)

    return check


def _rest_case(recv_exactly, pieces, n, sent):
    def check():
        call, left = _exchange(recv_exactly, pieces, n)
        if not call.finished:
            raise Failure(
                f"it had not returned after {CALL_TIMEOUT:g} s, though {n} bytes had been sent",
                HINT_STOP_AT_N,
                sent,
            )
        if call.error is not None:
            raise _unexpected(call, f"return {n} bytes")
        data = b"".join(pieces)
        _expect_bytes(call.result, data[:n], sent)
        if left != data[n:]:
            raise Failure(
                f"the bytes after the first {n} were gone from the socket "
                f"(left: {show_bytes(left)})",
                HINT_ASK_MISSING,
                sent,
            )

    return check


def _closed_early(recv_exactly):
    def check():
        sent = "b'abc', then the peer closed; recv_exactly(sock, 5)"
        call, _ = _exchange(recv_exactly, [b"abc"], 5, close_after=True, timeout=EOF_TIMEOUT)
        if not call.finished:
            raise Failure(
                f"it was still running {EOF_TIMEOUT:g} s after the peer had closed",
                HINT_EOF_LOOP + " Then raise EOFError: the missing bytes will never come.",
                sent,
            )
        if call.error is None:
            raise Failure(
                f"it returned {call.result!r:.60} instead of raising", HINT_RAISE_EOF, sent
            )
        if not isinstance(call.error, EOFError):
            raise Failure(
                f"it raised {describe_exception(call.error)}, not EOFError",
                HINT_EOFERROR_ITSELF,
                sent,
            )

    return check


def check_recv_exactly(recv_exactly) -> object:
    """Attack ``recv_exactly(sock, n)``: it must return exactly n bytes, or raise at EOF."""
    checks = [(title, _exactly_case(recv_exactly, *case)) for title, *case in EXACTLY_CASES]
    checks += [(title, _rest_case(recv_exactly, *case)) for title, *case in REST_CASES]
    checks.append(("raises EOFError when the peer closes too early", _closed_early(recv_exactly)))
    return run_checks("recv_exactly", checks, function=recv_exactly)


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


HINT_TWO_BYTE_HEADER = (
    "Your header is 2 bytes ('!H', lengths up to 65535); the exercise asks for 4: struct "
    "format '!I' (lengths up to 4 GiB)."
)
HINT_LITTLE_ENDIAN = (
    "Your length is little-endian; network order is big-endian: '!I' (the '!' makes it the "
    "same on every machine)."
)
HINT_COUNTS_CHARACTERS = (
    "The length counts characters, but the receiver counts bytes: 'é' and '✓' take 2 and 3 "
    "bytes in UTF-8. Encode first, then take len() of the bytes."
)
HINT_FRAME = "Expected struct.pack('!I', len(data)) + data, with data = text.encode()."

# (title, text): encode_message(text) must return expected_frame(text)
ENCODE_CASES = [
    ("'hi' becomes b'\\x00\\x00\\x00\\x02hi'", "hi"),
    ("the empty message", ""),
    ("'héllo ✓': the length counts bytes, not characters", "héllo ✓"),
    ("a message of 70000 characters (longer than 65535)", "x" * 70000),
]


def _frame_hint(result: bytes, text: str) -> str:
    """What a wrong frame ``result`` of ``text`` tells about the mistake."""
    expected = expected_frame(text)
    header = result[:4]
    payload = text.encode("utf-8")
    if len(payload) < 65536 and result == struct.pack("!H", len(payload)) + payload:
        return HINT_TWO_BYTE_HEADER
    if header == expected[:4][::-1] and result[4:] == expected[4:]:
        return HINT_LITTLE_ENDIAN
    if header == struct.pack("!I", len(text)) and result[4:] == expected[4:]:
        return HINT_COUNTS_CHARACTERS
    return HINT_FRAME


def _encode_case(encode_message, text):
    def check():
        sent = f"encode_message({text!r:.40})"
        call = call_bounded(encode_message, text)
        if call.error is not None:
            if "format requires" in str(call.error) or "argument out of range" in str(call.error):
                raise Failure(
                    f"it raised {describe_exception(call.error)}", HINT_TWO_BYTE_HEADER, sent
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
        if result != expected:
            raise Failure(
                f"it returned {show_bytes(result)} ({_header_text(result)}), expected "
                f"{show_bytes(expected)} ({_header_text(expected)})",
                _frame_hint(result, text),
                sent,
            )

    return check


def check_encode_message(encode_message) -> object:
    """Check ``encode_message(text) -> bytes`` (a pure function: no socket needed)."""
    checks = [(title, _encode_case(encode_message, text)) for title, text in ENCODE_CASES]
    return run_checks("encode_message", checks, function=encode_message)


# --- Exercise 3: recv_message ------------------------------------------------------------------


HINT_BYTE_ORDER = (
    "The length is big-endian (network order): struct.unpack('!I', header). '<I' "
    "(little-endian) or 'I' (this machine's order) read b'\\x00\\x00\\x00\\x05' as 83886080."
)
HINT_BODY_EXACTLY = (
    "Read the body with recv_exactly(sock, length), whose recv calls ask only for the bytes "
    "still missing, recv(n - len(data)): a bigger recv swallows the start of the next message."
)
HINT_HEADER_THEN_BODY = (
    "Read exactly the 4 header bytes, then exactly `length` bytes, with recv_exactly, each "
    "recv asking only for the bytes still missing: a bigger recv swallows the start of the "
    "next message."
)
HINT_HEADER_IN_PIECES = (
    "Read the header with recv_exactly(sock, 4): the 4 header bytes may arrive in pieces, "
    "and one recv returns only what has arrived."
)
HINT_RECV_MESSAGE = (
    "Read the header with recv_exactly(sock, 4), unpack the length with "
    "struct.unpack('!I', header), then recv_exactly(sock, length).decode()."
)
_HELLO_ACCENT = expected_frame("héllo")
_HELLO = expected_frame("hello")
_BIG_TEXT = "ü" * 300_000

# (title, pieces sent, texts due, input shown): one recv_message(sock) call per text
MESSAGE_CASES = [
    ("one message sent at once", [expected_frame("hello")], ["hello"], "one frame"),
    (
        "a message sent one byte at a time ('é' split in two)",
        [_HELLO_ACCENT[i : i + 1] for i in range(len(_HELLO_ACCENT))],
        ["héllo"],
        f"{show_bytes(_HELLO_ACCENT)}, one byte per send",
    ),
    (
        "two messages in one send",
        [expected_frame("one") + expected_frame("two")],
        ["one", "two"],
        "the frames of 'one' and 'two' in a single send",
    ),
    (
        "a message cut after 2 bytes of text, the rest sent with the next message",
        [_HELLO[:6], _HELLO[6:] + expected_frame("next")],
        ["hello", "next"],
        "the header of 'hello' and b'he', a pause, then b'llo' and the frame of 'next'",
    ),
    (
        "a message of 600000 bytes",
        [expected_frame(_BIG_TEXT)],
        [_BIG_TEXT],
        "the frame of 'ü' * 300000",
    ),
]


def _recv_messages(recv_message, pieces, how_many, close_after=False, timeout=CALL_TIMEOUT):
    """Feed ``pieces``; call ``recv_message`` ``how_many`` times; return the call and results."""
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


def _message_case(recv_message, pieces, texts, sent):
    def check():
        call, results = _recv_messages(recv_message, pieces, len(texts))
        little = {
            struct.unpack("<I", struct.pack("!I", len(t.encode("utf-8"))))[0] for t in texts
        } - {len(t.encode("utf-8")) for t in texts}
        if little & set(call.asked):
            raise Failure(
                "after the header, it asked for "
                f"{max(little & set(call.asked))} bytes: the length read in the wrong "
                "byte order",
                HINT_BYTE_ORDER,
                sent,
            )
        for got, due in zip(results, texts, strict=False):
            if due and isinstance(got, str) and got != due and got.startswith(due):
                raise Failure(
                    f"it returned {got!r:.40} for the {len(due.encode())}-byte message "
                    f"{due!r:.20}: it read into the next message",
                    HINT_BODY_EXACTLY,
                    sent,
                )
        if not call.finished:
            raise Failure(
                f"after returning {results!r:.60}, it was still waiting for bytes",
                HINT_HEADER_THEN_BODY,
                sent,
            )
        if call.error is not None:
            if isinstance(call.error, UnicodeDecodeError):
                raise Failure(
                    f"it raised {describe_exception(call.error)}", HINT_DECODE_WHOLE, sent
                )
            if "unpack requires" in str(call.error):
                raise Failure(
                    f"it raised {describe_exception(call.error)}", HINT_HEADER_IN_PIECES, sent
                )
            raise _unexpected(call, "return the message as str")
        if results and None in results:
            returned_none(None, sent)
        raw = next((r for r in results if isinstance(r, bytes | bytearray)), None)
        if raw is not None:  # bytes never equal the expected str
            raise Failure(
                f"it returned bytes, {show_bytes(raw)}, where the text (a str) was expected",
                "Decode the body before returning it: recv_exactly(sock, length).decode().",
                sent,
            )
        if results != texts:
            raise Failure(
                f"it returned {results!r:.80}, expected {texts!r:.80}", HINT_RECV_MESSAGE, sent
            )

    return check


def _closed_mid_frame(recv_message):
    def check():
        sent = "the header of a 10-byte message and 3 bytes, then the peer closed"
        pieces = [struct.pack("!I", 10) + b"abc"]
        call, _ = _recv_messages(recv_message, pieces, 1, close_after=True, timeout=EOF_TIMEOUT)
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
        if not isinstance(call.error, EOFError):
            raise Failure(
                f"it raised {describe_exception(call.error)}, not EOFError",
                "The task asks for EOFError: let the one from recv_exactly come through (do "
                "not catch it, and do not raise another exception instead), so that the code "
                "that calls recv_message can catch EOFError and know the peer closed mid-message.",
                sent,
            )

    return check


def check_recv_message(recv_message) -> object:
    """Attack ``recv_message(sock) -> str``: one framed message per call."""
    checks = [(title, _message_case(recv_message, *case)) for title, *case in MESSAGE_CASES]
    checks.append(("raises when the peer closes mid-message", _closed_mid_frame(recv_message)))
    return run_checks("recv_message", checks, function=recv_message)


# --- Exercise 4: upper_server ---------------------------------------------------------------


def _upper_crash(exc):
    if isinstance(exc, UnicodeDecodeError):
        return HINT_DECODE_WHOLE
    return None


_TEXT = "héllo wörld"
_DATA = _TEXT.encode()

# (title, pieces sent, reply due, input shown): the client shuts down its sending side after
# the pieces (one piece: sent in one go; several: each once the server has read the last)
UPPER_CASES = [
    (
        "b'hello' comes back as b'HELLO', then the end",
        [b"hello"],
        b"HELLO",
        "b'hello', then the client shut down its sending side",
    ),
    (
        "text sent one byte at a time ('é' split in two)",
        [_DATA[i : i + 1] for i in range(len(_DATA))],
        _TEXT.upper().encode(),
        f"{show_bytes(_DATA)}, one byte per send",
    ),
]


def _upper_case(upper_server, pieces, expected, sent):
    def check():
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

    return check


def _one_after_another(upper_server):
    def check():
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

    return check


def check_upper_server(upper_server) -> object:
    """Attack ``upper_server(port)``: read until b'', reply in capitals, close."""
    checks = [(title, _upper_case(upper_server, *case)) for title, *case in UPPER_CASES]
    checks.append(("three clients, one after another", _one_after_another(upper_server)))
    return run_checks("upper_server", checks)


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


HINT_SERVE_ON = "Serve client after client: accept() in a `while True:` loop."
BIG_DATA = b"0123456789abcdef" * (BIG_SIZE // 16)


@dataclass(frozen=True)
class Download:
    """A case of download_server: ``data`` it is given, ``clients`` that fetch it in turn
    (each with ``rcvbuf``, a small receive window, when given); ``sent`` is the input shown."""

    title: str
    data: bytes
    sent: str
    rcvbuf: int | None = None
    clients: int = 1


DOWNLOAD_CASES = [
    Download("a client gets b'hello', then the end", b"hello", "data = b'hello'"),
    Download(
        "a client that reads with a small buffer gets all 6 MiB",
        BIG_DATA,
        "data = 6 MiB, read by a client with SO_RCVBUF = 16 KiB",
        rcvbuf=16384,
    ),
    Download(
        "three clients, one after another",
        b"hello",
        "data = b'hello', three clients one after another",
        clients=3,
    ),
]


def _download_case(download_server, case: Download):
    def check():
        data, sent = case.data, case.sent
        with serving(download_server, args=(data,)) as server:
            for index in range(case.clients):
                with socket.socket() as sock:
                    if case.rcvbuf:
                        # A small receive window: the data cannot all be in flight at once,
                        # so a single send() on a socket with a timeout returns early.
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, case.rcvbuf)
                    sock.settimeout(5.0)
                    try:
                        server.wait_quiet(5.0, deadlines=False)  # see _checker.connect
                        if not still_listens(server):
                            raise ConnectionRefusedError
                        sock.connect(("127.0.0.1", server.port))
                    except ConnectionRefusedError:
                        ordinal = ("first ", "second ", "third ")[index] if case.clients > 1 else ""
                        raise Failure(
                            f"the {ordinal}client was refused: your server had stopped",
                            HINT_SERVE_ON,
                            sent,
                        ) from None
                    _expect_reply_then_eof(sock, server, data, sent, big=len(data) > 1 << 20)

    return check


def _download_has_timeout(download_server):
    def check():
        big = BIG_DATA
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

    return check


HINT_VANISHED = (
    "A client may vanish in the middle of a download: sendall() then raises "
    "ConnectionResetError or BrokenPipeError. Wrap one client's sendall in "
    "`try: ... except (ConnectionError, TimeoutError): pass`, inside the loop, so that "
    "the server closes that connection and serves the next client."
)


HINT_STALLED = (
    "A client that stops reading makes sendall() wait until your timeout, and then raise "
    "TimeoutError: catch it with ConnectionError, `except (ConnectionError, TimeoutError):`, "
    "around one client's sendall (inside the loop), so that the server closes that "
    "connection and serves the next client."
)
STALL_WAIT = 6.0  # a timeout up to this long is waited for (the task says 5 s)


def _download_crash_hint(exc: BaseException) -> str | None:
    if isinstance(exc, TimeoutError):
        return HINT_STALLED
    return HINT_VANISHED if isinstance(exc, ConnectionError) else None


def _next_client_downloads_all(server, big, sent, hint) -> None:
    with socket.socket() as sock:
        sock.settimeout(5.0)
        try:
            if not still_listens(server):
                raise ConnectionRefusedError
            sock.connect(("127.0.0.1", server.port))
        except ConnectionRefusedError:
            raise Failure(
                "the next client was refused: your server had stopped", hint, sent
            ) from None
        _expect_reply_then_eof(sock, server, big, sent, big=True)


def _download_survives_a_stalled_client(download_server):
    def check():
        big = BIG_DATA
        sent = (
            "data = 6 MiB; a client reads the first bytes, then nothing (your sendall() waits "
            "until your timeout); then the next client downloads all of it"
        )
        with serving(download_server, _download_crash_hint, args=(big,)) as server:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # sendall() waits
                sock.settimeout(5.0)
                sock.connect(("127.0.0.1", server.port))
                first, how = read_reply(sock, server, lambda d: len(d) > 0)
                if not first:
                    _judge_reply(first, how, big, sent, big=True)
                theirs = server_side(server, sock)
                waits = theirs.gettimeout() if theirs is not None else None
                if waits is None or waits > STALL_WAIT:
                    return  # no timeout: its own row says so; a longer one is not waited for
                # Until your timeout has ended the wait (the socket closed) or the server
                # has stopped: a condition looked at in short slices, bounded.
                deadline = time.monotonic() + waits + 2.0
                pause = threading.Event()
                while theirs.fileno() != -1 and server.running and time.monotonic() < deadline:
                    pause.wait(0.05)
                del theirs
            server.wait_quiet(1.0)  # it has met the timeout, and accepts the next client
            _next_client_downloads_all(server, big, sent, HINT_STALLED)

    return check


def _download_survives_a_vanishing_client(download_server):
    def check():
        big = BIG_DATA
        sent = (
            "data = 6 MiB; a client reads the first bytes and vanishes (a reset); then the "
            "next client downloads all of it"
        )
        with serving(download_server, _download_crash_hint, args=(big,)) as server:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # sendall() waits
                sock.settimeout(5.0)
                sock.connect(("127.0.0.1", server.port))
                first, how = read_reply(sock, server, lambda d: len(d) > 0)
                if not first:
                    _judge_reply(first, how, big, sent, big=True)
                abort(sock)  # your server is in sendall(): it gets the reset
            server.wait_quiet(1.0)  # it has met the reset, and accepts the next client
            _next_client_downloads_all(server, big, sent, HINT_VANISHED)

    return check


def check_download_server(download_server) -> object:
    """Attack ``download_server(port, data)``: send ``data`` to each client, then close."""
    checks = [(case.title, _download_case(download_server, case)) for case in DOWNLOAD_CASES]
    checks.append(
        (
            "the connection socket accept() returned has a timeout (conn.settimeout)",
            _download_has_timeout(download_server),
        )
    )
    checks.append(
        (
            "a client that vanishes mid-download does not stop the server",
            _download_survives_a_vanishing_client(download_server),
        )
    )
    checks.append(
        (
            "a client that stops reading: after your timeout, the next client is served",
            _download_survives_a_stalled_client(download_server),
        )
    )
    return run_checks("download_server", checks)


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
