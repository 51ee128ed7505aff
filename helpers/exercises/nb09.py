"""Exercises of notebook 09, a chat room: each ``check_<name>(function)`` attacks it.

    from helpers.exercises import nb09
    nb09.check_read_lines(read_lines)
    nb09.check_chat_server(chat_server)
    nb09.check_fair_chat_server(fair_chat_server)

Rules of this file:
- The cases are data: ``LINE_CASES`` (pieces of bytes and the lines they hold) and
  ``CONVERSATIONS`` (steps of a chat: who joins, says, quits, closes or vanishes, and
  what everyone in the room must then have read). One engine runs each kind.
- The chat's clients are real sockets on 127.0.0.1, read by one selector thread of the
  check (``Room``); the checks wait on what they read (a Condition), never on time, and
  every wait has a bound. Between the pieces of a split line the check waits until the
  learner's server has read all that was sent (netlab's "settled").
- The protocol, as the notebook states it: a client's first line is its nickname; the
  server then sends "* NICK joined" to everyone (the newcomer too); each later line TEXT
  goes to everyone (the sender too) as "NICK: TEXT"; "/quit", a close or a reset make
  the server send "* NICK left" to those who stay. Lines end with "\\n" (a "\\r" before
  it is tolerated).
- A verdict never shows a port or a time.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import queue
import selectors
import socket
import threading
import time

from helpers.netlab._output import RUNAWAY_LINES

from ._checker import (
    CALL_TIMEOUT,
    REPLY_TIMEOUT,
    Failure,
    abort,
    call_with_pieces,
    connected_pair,
    describe_exception,
    describe_value,
    returned_none,
    run_checks,
    serving,
)

# --- Exercise 1: read_lines ----------------------------------------------------------------

HINT_BUFFER = (
    "recv() returns whatever has arrived: part of a line, or several lines. Keep a buffer "
    "of bytes, add each chunk to it, and yield every complete line (up to b'\\n') in it; "
    "keep the rest for the next chunk."
)
HINT_DECODE_LINES = (
    "A UTF-8 letter (é is b'\\xc3\\xa9') can be split between two chunks: decoding each "
    "chunk fails, or garbles it. Keep bytes in the buffer and decode only whole lines."
)
HINT_REST = (
    "When recv() returns b'' the peer has closed: if the buffer still holds bytes (a "
    "last line without b'\\n'), yield them as the last line, then stop."
)
HINT_KEEP_REST = (
    "Bytes after the last b'\\n' of a chunk are the beginning of the next line: keep them "
    "in the buffer (line, _, buffer = buffer.partition(b'\\n')) instead of dropping them."
)
HINT_CR = (
    "telnet (and nc -C) end lines with b'\\r\\n': remove a b'\\r' before the b'\\n' too "
    "(line.removesuffix(b'\\r')), and keep empty lines as ''."
)
HINT_STR = "Yield str, not bytes: decode each complete line with .decode('utf-8')."
HINT_STOP = (
    "Once the peer has closed, recv() returns b'' at once, every time: stop there "
    "(`if not data: break`), or the loop never ends."
)
HINT_EMPTY_REST = (
    "After the close you yielded an empty line that was never sent: when the stream ends "
    "with b'\\n' the buffer is empty. Yield the rest only if it is not empty "
    "(`if buffer: yield ...`)."
)
HINT_SHORT_RECV = (
    "Your function stopped before the peer closed. recv() returns whatever has arrived, "
    "often less than it asked for: that is not the end. Only b'' means the peer has "
    "closed; loop until recv() returns b''."
)
HINT_LINE_END = (
    "Yield each line without its line end: remove the b'\\n' (and a b'\\r' just before it) "
    "before you decode it."
)
HINT_ONLY_LINE_END = (
    "Remove only the line end: b'\\n', and a b'\\r' just before it. Spaces, and a b'\\r' "
    "anywhere else, are part of the line (.strip(), .rstrip(' \\r') or .replace(b'\\r', b'') "
    "remove too much; a text makefile() also ends a line at a lone '\\r' unless "
    "newline='\\n'). Use line.removesuffix(b'\\r')."
)
HINT_ALL_LINES = (
    "One recv() can bring several lines: yield every complete line in the buffer "
    "(`while b'\\n' in buffer:`), not only the first one, before you call recv() again "
    "(the next bytes may come much later)."
)
HINT_GENERATOR = (
    "Write a generator: `yield` each line as soon as it is complete. A chat shows a line "
    "when it arrives; a function that collects lines until the peer closes shows nothing "
    "until then."
)
HINT_TOO_SLOW = (
    "Reading one byte per recv() is correct but too slow for a line of 200,000 bytes: "
    "each recv() is a system call. Ask for more (sock.recv(4096)) and keep what you do "
    "not use yet in a buffer."
)
LONG_LINE_TIMEOUT = 20.0  # seconds for the 200,000-byte line (one byte per recv() is slow)
LONG_LINE = ("x" * 99 + ";") * 2000  # 200,000 bytes, sent in pieces of 7,000

# (pieces sent, lines expected, hint when wrong, what the case shows)
LINE_CASES = [
    ([b"hello\n", b"world\n"], ["hello", "world"], HINT_BUFFER, "two lines, one per chunk"),
    ([b"two\nlines\n"], ["two", "lines"], HINT_BUFFER, "two lines in one chunk"),
    ([b"hel", b"lo\nwor", b"ld\n"], ["hello", "world"], HINT_KEEP_REST, "lines split anywhere"),
    (
        [b"caf\xc3", b"\xa9 cr\xc3\xa8me\n"],
        ["caf\u00e9 cr\u00e8me"],
        HINT_DECODE_LINES,
        "a UTF-8 letter split between two chunks",
    ),
    (
        [bytes([b]) for b in "zo\u00eb: \u2713 \U0001f44b\n".encode()],
        ["zo\u00eb: \u2713 \U0001f44b"],
        HINT_DECODE_LINES,
        "one byte per chunk, with letters of 2, 3 and 4 bytes",
    ),
    ([b"last line without end"], ["last line without end"], HINT_REST, "no b'\\n' at the end"),
    ([b"telnet\r\n", b"ends\r", b"\n\n"], ["telnet", "ends", ""], HINT_CR, "b'\\r\\n' line ends"),
    (
        [b"  spaces stay \r\n", b"a\rb\n"],
        ["  spaces stay ", "a\rb"],
        HINT_ONLY_LINE_END,
        "spaces and an inner b'\\r' are part of the line",
    ),
    ([], [], HINT_STOP, "a peer that closes at once"),
    (
        [LONG_LINE.encode()[i : i + 7000] for i in range(0, len(LONG_LINE), 7000)] + [b"\n"],
        [LONG_LINE],
        HINT_BUFFER,
        "a line of 200,000 bytes in 29 chunks",
    ),
]
MAX_LINES = 10_000  # more than that from these cases: a loop that yields for ever


def _collect(read_lines):
    """A function of the socket that returns what ``read_lines`` yields, as a list."""

    def collect(sock):
        result = read_lines(sock)
        if result is None or isinstance(result, (str, bytes, bytearray)):
            return result
        lines = []
        for line in result:
            lines.append(line)
            if len(lines) > MAX_LINES:
                break
        return lines

    return collect


def _line_case(func, pieces, expected, hint):
    def check():
        shown = " + ".join(_show_piece(p) for p in pieces[:4]) + (
            " + ..." if len(pieces) > 4 else ""
        )
        sent = f"{shown or 'nothing'}, then the peer closes"
        total = sum(map(len, pieces))
        # a long line takes a reader of one byte per recv() a few seconds: allow for it
        timeout = LONG_LINE_TIMEOUT if total > 10_000 else CALL_TIMEOUT
        with connected_pair() as (learner, attacker):
            call = call_with_pieces(
                _collect(func), learner, attacker, pieces, close_after=True, timeout=timeout
            )
            read = learner.received
        if not call.finished:
            slow = call.sent < total and learner.read_calls > 1000
            stuck = call.sent == total
            raise Failure(
                f"it did not finish within {timeout:g} s (after {call.sent} of "
                f"{total} bytes the peer closed)",
                HINT_TOO_SLOW if slow else HINT_STOP if stuck else hint,
                sent,
            )
        if call.error is not None:
            error = call.error
            raise Failure(
                f"it raised {describe_exception(error)}",
                HINT_DECODE_LINES if isinstance(error, UnicodeDecodeError) else hint,
                sent,
            )
        result = call.result
        returned_none(result, sent)
        if read < total and not isinstance(result, (str, bytes, bytearray)):
            raise Failure(
                f"it stopped after reading {read} of the {total} bytes, before the peer "
                f"closed; it yielded {describe_value(result, 90)}",
                HINT_SHORT_RECV,
                sent,
            )
        if isinstance(result, (str, bytes, bytearray)):
            raise Failure(
                f"it returned {describe_value(result)}: one value, not the lines",
                HINT_GENERATOR,
                sent,
            )
        if len(result) > MAX_LINES:
            raise Failure(f"it yielded more than {MAX_LINES} lines", HINT_STOP, sent)
        if any(isinstance(line, (bytes, bytearray)) for line in result):
            raise Failure(f"it yielded {describe_value(result)}", HINT_STR, sent)
        if result != expected:
            raise Failure(
                f"it yielded {describe_value(result, 90)}, expected {describe_value(expected, 90)}",
                _line_hint(result, expected, hint),
                sent,
            )

    return check


def _show_piece(piece: bytes) -> str:
    return repr(piece) if len(piece) <= 40 else f"{len(piece)} bytes ({piece[:12]!r}...)"


def _line_hint(result, expected, hint):
    if result == [*expected, ""]:
        return HINT_EMPTY_REST  # an empty "last line" after the close
    if len(result) == len(expected) + 1 and result[:-1] == expected:
        return HINT_STOP
    if any(isinstance(line, str) and line.endswith("\n") for line in result):
        return HINT_LINE_END
    if hint is HINT_ONLY_LINE_END:
        return hint
    if any(isinstance(line, str) and line.endswith("\r") for line in result):
        return HINT_CR
    if any(isinstance(line, str) and "\ufffd" in line for line in result):
        return HINT_DECODE_LINES
    if result == expected[: len(result)] and hint != HINT_REST and expected[-1:] != [""]:
        return HINT_KEEP_REST if len(result) else hint
    return hint


def _as_they_come(func):
    """Each line must be yielded while the peer still has the connection open, and all
    the lines of one chunk before the next chunk comes."""

    def check():
        sent = (
            "b'first\\n', then (once it is yielded) b'second\\nthird\\n' in one piece, "
            "then (once both are yielded) the peer closes"
        )
        got: queue.Queue = queue.Queue()
        errors: list = []

        def consume(sock):
            result = func(sock)
            if result is None or isinstance(result, (str, bytes, bytearray)):
                return result
            for line in result:
                got.put(line)
            return "done"

        def next_line():
            try:
                return got.get(timeout=REPLY_TIMEOUT)
            except queue.Empty:
                return None

        with connected_pair() as (learner, attacker):
            worker = threading.Thread(
                target=_run_into,
                args=(consume, learner, got, errors),
                name="exercise-call",
                daemon=True,
            )
            worker.start()
            attacker.sendall(b"first\n")
            first = next_line()
            if first is None:
                raise Failure(
                    "after b'first\\n' had arrived it yielded nothing for 3 s: it waited for more",
                    HINT_GENERATOR,
                    sent,
                )
            if first is _NOTHING:
                return  # it raised or returned at once: the other checks say why
            attacker.sendall(b"second\nthird\n")
            second = next_line()
            third = next_line() if second not in (None, _NOTHING) else None
            attacker.shutdown(socket.SHUT_WR)
            worker.join(REPLY_TIMEOUT)
        if errors:
            return  # the other checks say what it raises, and why
        if second is _NOTHING or (third is _NOTHING and second == "second"):
            raise Failure(
                "it stopped before the peer closed (after a recv() of fewer bytes than it "
                "asked for)",
                HINT_SHORT_RECV,
                sent,
            )
        if (first, second) == ("first", "second") and third is None:
            raise Failure(
                "it yielded 'first', then 'second', then nothing for 3 s though b'third\\n' "
                "had arrived with b'second\\n': it waited for the next recv()",
                HINT_ALL_LINES,
                sent,
            )
        got_lines = [line for line in (first, second, third) if isinstance(line, (str, bytes))]
        if any(isinstance(line, bytes) for line in got_lines):
            hint = HINT_STR
        elif any(line.endswith("\n") for line in got_lines):
            hint = HINT_LINE_END
        else:
            hint = HINT_BUFFER
        if (first, second, third) != ("first", "second", "third"):
            raise Failure(
                f"it yielded {', '.join(map(repr, got_lines))}, expected 'first', 'second', "
                "'third'",
                hint,
                sent,
            )

    return check


_NOTHING = object()  # put by _run_into when the function returned or raised


def _run_into(consume, sock, got, errors):
    try:
        consume(sock)
    except BaseException as exc:  # noqa: BLE001 - the other checks report what it raises
        errors.append(exc)
    finally:
        got.put(_NOTHING)


def check_read_lines(read_lines) -> object:
    """Check ``read_lines(sock)``: yields each line of the stream, as str."""
    checks = [("each line is yielded as soon as it is complete", _as_they_come(read_lines))]
    checks += [(what, _line_case(read_lines, *case)) for *case, what in LINE_CASES]
    return run_checks("read_lines", checks, read_lines)


# --- the chat's clients, as the checks run them ----------------------------------------------


class Member:
    """A chat client of a check: a real socket; the Room's thread reads its lines."""

    def __init__(self, room: Room, nick: str, reads: bool = True, rcvbuf: int | None = None):
        self.room = room
        self.nick = nick
        self.lines: list[str] = []
        self.ended: str | None = None  # "eof" or "reset": how the server ended it
        self._buffer = b""
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(REPLY_TIMEOUT)
        try:
            self.sock.connect(("127.0.0.1", room.port))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(REPLY_TIMEOUT * 3)  # for sendall; reads are the Room's
        self.fd = self.sock.fileno()
        if reads:
            room.watch(self)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def received(self, data: bytes) -> None:
        """Called by the Room's thread with a chunk (b'' at the end)."""
        self._buffer += data
        *whole, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(line.removesuffix(b"\r").decode("utf-8", "replace") for line in whole)

    def count(self, prefix: str) -> int:
        return sum(1 for line in self.lines if line.startswith(prefix))

    def close(self) -> None:
        self.room.forget(self)
        self.sock.close()

    def reset(self) -> None:
        self.room.forget(self)
        abort(self.sock)


class Room:
    """The check's side of a chat: members, and one thread that reads all their sockets."""

    def __init__(self, port: int):
        self.port = port
        self.changed = threading.Condition()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._todo: list = []
        self._running = True
        self._thread = threading.Thread(target=self._read, name="exercise-room", daemon=True)
        self._thread.start()

    def watch(self, member: Member) -> None:
        self._ask(("watch", member))

    def forget(self, member: Member) -> None:
        self._ask(("forget", member))

    def _ask(self, item) -> None:
        done = threading.Event()
        with self.changed:
            self._todo.append((item, done))
        self._wake_w.send(b"x")
        done.wait(REPLY_TIMEOUT)

    def _read(self) -> None:
        while self._running:
            for key, _ in self._selector.select(0.5):
                if key.fileobj is self._wake_r:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                    self._do_todo()
                    continue
                member = key.data
                try:
                    data = key.fileobj.recv(1 << 20)
                    how = "eof"
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data, how = b"", "reset"
                with self.changed:
                    member.received(data)
                    if not data:
                        member.ended = how
                        with contextlib.suppress(KeyError, ValueError):
                            self._selector.unregister(key.fd)
                    self.changed.notify_all()

    def _do_todo(self) -> None:
        with self.changed:
            todo, self._todo = self._todo, []
        for (what, member), done in todo:
            with contextlib.suppress(KeyError, ValueError, OSError):
                if what == "watch":  # a blocking socket: read only when it is readable
                    self._selector.register(member.sock, selectors.EVENT_READ, member)
                else:
                    self._selector.unregister(member.fd)
            done.set()

    def wait(self, predicate, timeout: float = REPLY_TIMEOUT) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def close(self) -> None:
        self._running = False
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(REPLY_TIMEOUT)
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                key.fileobj.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


@contextlib.contextmanager
def open_room(port: int):
    room = Room(port)
    try:
        yield room
    finally:
        room.close()


# --- Exercise 2: chat_server -----------------------------------------------------------------

HINT_JOIN = (
    "The first line a client sends is its nickname. Add the client to the room, then send "
    "'* NICK joined\\n' to everyone in it, the newcomer included (so it knows it is in)."
)
HINT_SAY = (
    "Send each later line to every client in the room, the sender included, as "
    "'NICK: TEXT\\n' (one line, ending with b'\\n')."
)
HINT_QUIT = (
    "A line '/quit' is no message: remove that client, send '* NICK left\\n' to those who "
    "stay, and close its connection (it then reads b'')."
)
HINT_LEAVE = (
    "When recv() returns b'' (or raises ConnectionResetError) the client has gone: remove it "
    "from the room and send '* NICK left\\n' to those who stay."
)
HINT_RESET = (
    "A client that vanishes makes recv() raise ConnectionResetError and sendall() raise "
    "BrokenPipeError or ConnectionResetError. Catch OSError around the client's recv() "
    "loop (then that client leaves: remove it, tell the others) and, separately, around "
    "each sendall() to each member (only that member is gone: the sender goes on); the "
    "room and the other clients' threads go on."
)
HINT_RESET_ASYNC = (
    "A client that vanishes makes `await reader.readline()` raise ConnectionResetError, "
    "and write() or `await writer.drain()` to it raise ConnectionResetError or "
    "BrokenPipeError. In each handler catch OSError around the reading loop (then that "
    "client leaves: in a finally, remove it and tell the others) and, separately, around "
    "each other member's write()/drain() in the broadcast (only that member is gone)."
)
HINT_LEAVE_ASYNC = (
    "When `await reader.readline()` returns b'' (or raises ConnectionResetError) the client "
    "has gone: remove its writer from the room and send '* NICK left\\n' to those who stay."
)
HINT_FRAMING = (
    "recv() returns whatever has arrived: part of a line, or two lines. Read lines with a "
    "buffer (your read_lines of Exercise 1, or sock.makefile()), and decode only whole "
    "lines: a UTF-8 letter may be split between two chunks."
)
HINT_ITERATE = (
    "'dictionary changed size during iteration': one thread went through the clients while "
    "another added or removed one. Hold one Lock around every use of the dict (adding, "
    "removing, the broadcast loop), or loop over a copy: for conn in list(clients)."
)
HINT_LOST = (
    "Some messages never reached clients that stayed in the room all along. A broadcast "
    "must reach every member: no thread that sends may die (catch OSError per member), and "
    "the set of members must not change under a loop that goes through it (a Lock or a copy)."
)
HINT_NAMELESS = (
    "A client that closes before it sends its nickname never joined: nobody was told it "
    "came, so tell nobody it left ('* None left' is a leave without a nick). Announce a "
    "leave only for a client that has a nickname (`if nick is not None:`)."
)
HINT_NEWLINE = (
    "Bytes of your line arrived, but no b'\\n' after them: the client's reader waits for "
    "the line end. Send each line as (text + '\\n').encode('utf-8')."
)
HINT_ONCE = (
    "Each member must get each line once. Send one broadcast per event to each member "
    "once: a member in the dict twice, or two places that broadcast the same event, "
    "doubles the line."
)
HINT_LEFT_ONCE = (
    "One departure, one '* NICK left': when both the client's own thread (recv() got b'' "
    "or a reset) and a failed send to it notice that it has gone, only the one that "
    "removes it from the dict may announce it (`if clients.pop(conn, None) is not None:`, "
    "under the lock)."
)
HINT_OTHERS_ERROR = (
    "A client was disconnected just as it joined: most likely sending its join line to "
    "another member, which had just vanished, raised an error in the newcomer's own "
    "thread, which then ended as if the newcomer had gone. Catch OSError around each "
    "send to another member, so that only that member leaves."
)
HINT_OTHERS_ERROR_ASYNC = (
    "A client was disconnected just as it joined: most likely `await writer.drain()` "
    "(or write()) for another member, which had just vanished, raised "
    "ConnectionResetError inside the newcomer's own handler, which then ended as if the "
    "newcomer had gone. In the broadcast, catch OSError around each other member's "
    "write()/drain() and drop only that member (or do not await other members' drain())."
)
HINT_BADF = (
    "'Bad file descriptor': a thread used a socket after it was closed. Most often an "
    "error while sending to another member (it had just vanished) ended the sender's own "
    "loop, which then closed the sender's socket while others still sent to it. Catch "
    "OSError around each send to another member (only that member leaves), and remove a "
    "client from the dict (under the lock) before you close its socket."
)
HINT_NAME_ERROR = (
    "A NameError: your server uses {name}, which this kernel does not know (not a mistake "
    "in your logic). {which}Run the cell that defines it (after a restart: the first cell, "
    "its imports, too), then your function's cell, then this check."
)


def hint_name_error(exc: NameError) -> str:
    name = getattr(exc, "name", None)
    which = "read_lines is your function of Exercise 1. " if name == "read_lines" else ""
    return HINT_NAME_ERROR.format(name=repr(name) if name else "a name", which=which)


HINT_ONE_AT_A_TIME = (
    "The room serves one client at a time: start a thread per client "
    "(threading.Thread(...).start(), not .run()), or use selectors or asyncio."
)

# Steps of a conversation: (action, nick, data). join: connect and send the nickname
# (data: its pieces, or None for nick + "\n"); say: send data (a str, or a list of byte
# pieces, each sent once the server has read the one before); quit: send "/quit";
# close: close the socket (FIN); reset: vanish (RST). After each step every member must
# have read exactly what the protocol says, and nothing else.
CONVERSATIONS = [
    (
        "two clients: join lines, a message to both, /quit",
        [
            ("join", "alice", None),
            ("join", "bob", None),
            ("say", "alice", "hello, room"),
            ("say", "bob", "hi alice"),
            ("quit", "bob", None),
            ("say", "alice", "still here"),
        ],
    ),
    (
        "lines split anywhere, two in one send, UTF-8 split",
        [
            ("join", "alice", None),
            ("join", "zo\u00eb", [b"zo\xc3", b"\xab\n"]),
            ("say", "zo\u00eb", [b"two\nli", b"nes\n", b"a split ", b"line \xe2\x9c", b"\x93\n"]),
        ],
    ),
    (
        "a client that closes before its nickname, one without /quit, one that vanishes",
        [
            ("join", "alice", None),
            ("nameless", "", None),
            ("join", "bob", None),
            ("join", "carol", None),
            ("close", "bob", None),
            ("say", "alice", "bob has gone"),
            ("reset", "carol", None),
            ("say", "alice", "carol too"),
            ("join", "dave", None),
            ("say", "dave", "hello?"),
        ],
    ),
]
STEP_HINTS = {
    "join": HINT_JOIN,
    "say": HINT_SAY,
    "quit": HINT_QUIT,
    "close": HINT_LEAVE,
    "reset": HINT_RESET,
    "nameless": HINT_NAMELESS,
}


def _say_lines(nick: str, data) -> list[str]:
    if isinstance(data, str):
        texts = [data]
    else:
        texts = b"".join(data).decode("utf-8").split("\n")[:-1]
    return [f"{nick}: {text}" for text in texts]


def _describe_step(action: str, nick: str, data) -> str:
    if action == "join":
        pieces = data or [(nick + "\n").encode()]
        return f"{nick} connects and sends {' + '.join(map(repr, pieces))}"
    if action == "say":
        shown = (
            repr((data + "\n").encode()) if isinstance(data, str) else " + ".join(map(repr, data))
        )
        return f"{nick} sends {shown}"
    return {
        "quit": f"{nick} sends b'/quit\\n'",
        "close": f"{nick} closes its socket",
        "reset": f"{nick} vanishes (its socket is reset)",
        "nameless": "a client connects and closes before it sends a nickname",
    }[action]


def _conversation(server, steps):
    def run():
        with open_room(server.port) as room:
            members: dict[str, Member] = {}
            expected: dict[str, list[str]] = {}
            for action, nick, data in steps:
                sent = _describe_step(action, nick, data)
                hint = STEP_HINTS[action]
                gone = None
                if action == "join":
                    members[nick] = Member(room, nick)
                    expected[nick] = []
                    _send_pieces(server, members[nick], data or [(nick + "\n").encode()])
                    for other in expected:
                        expected[other].append(f"* {nick} joined")
                    if data:
                        hint = HINT_FRAMING
                elif action == "say":
                    pieces = [(data + "\n").encode()] if isinstance(data, str) else data
                    _send_pieces(server, members[nick], pieces)
                    for other in expected:
                        expected[other].extend(_say_lines(nick, data))
                    if not isinstance(data, str):
                        hint = HINT_FRAMING
                elif action == "nameless":
                    with socket.create_connection(("127.0.0.1", server.port), REPLY_TIMEOUT):
                        server.wait_quiet(REPLY_TIMEOUT, deadlines=False)  # it was accepted
                else:
                    gone = members.pop(nick)
                    del expected[nick]
                    before = len(gone.lines)
                    if action == "quit":
                        gone.send(b"/quit\n")
                    elif action == "close":
                        gone.close()
                    else:
                        gone.reset()
                    for other in expected:
                        expected[other].append(f"* {nick} left")
                if action == "join" and not data and len(members) > 1:
                    hint = _one_at_a_time(room, members, nick) or hint
                _expect(room, server, members, expected, hint, sent)
                if action == "quit":
                    if not room.wait(lambda gone=gone: gone.ended is not None):
                        raise Failure(
                            f"{nick}'s connection stayed open after /quit", HINT_QUIT, sent
                        )
                    if gone.lines[before:]:
                        raise Failure(
                            f"{nick} read {describe_value(gone.lines[before:], 80)} after /quit",
                            HINT_QUIT,
                            sent,
                        )
                    gone.close()
                crashed = server.errors[:1]
                if crashed:  # a thread died at this step: say so at this step
                    raise Failure(
                        "a thread of your server died at this step",
                        _crash_hint(crashed[0]) or hint,
                        sent,
                    )
            leave_one_by_one(room, list(members.values()), server)

    return run


def leave_one_by_one(room, members: list[Member], server=None) -> None:
    """Close members one at a time, each once the others have read that it left (or
    REPLY_TIMEOUT has passed) and ``server`` (if given) is settled again, so that the
    server's '* NICK left' never meets a socket the check has just closed, nor a leave
    its broadcast loop: a crash there would be the check's doing, at no step of its own."""
    while members:
        member = members.pop()
        member.close()
        line = f"* {member.nick} left"
        room.wait(lambda line=line: all(line in m.lines or m.ended for m in members))
        if server is not None:
            server.wait_quiet(REPLY_TIMEOUT, deadlines=False)


def _one_at_a_time(room, members, nick) -> str | None:
    """HINT_ONE_AT_A_TIME when no member at all read the newcomer's join line."""
    line = f"* {nick} joined"
    if room.wait(lambda: any(line in m.lines for m in members.values())):
        return None
    return HINT_ONE_AT_A_TIME


def _send_pieces(server, member: Member, pieces) -> None:
    for index, piece in enumerate(pieces):
        if index:  # the server has read the piece before (so it arrives on its own)
            server.wait_quiet(REPLY_TIMEOUT, deadlines=False)
        member.send(piece)


def _expect(room, server, members, expected, hint, sent) -> None:
    def complete():
        return all(
            len(members[nick].lines) >= len(lines) or members[nick].ended
            for nick, lines in expected.items()
        )

    room.wait(complete)
    server.wait_quiet(0.5, deadlines=False)  # anything more it sends now comes too
    for nick, lines in expected.items():
        member = members[nick]
        got = member.lines
        if got != lines:
            missing = [line for line in lines if line not in got]
            extra = [line for line in got if line not in lines]
            twice = [line for line in got if got.count(line) > lines.count(line)]
            nameless = [line for line in extra if line in ("* None left", "*  left")]
            if nameless:
                what, hint = f"{nick} read {nameless[0]!r}", HINT_NAMELESS
            elif missing and member._buffer and not member.ended:
                what = (
                    f"{nick} never read {missing[0]!r}: {member._buffer[:60]!r} arrived, "
                    "with no b'\\n' after it"
                )
                hint = HINT_NEWLINE
            elif missing:
                what = f"{nick} never read {missing[0]!r}"
            elif extra:
                what = f"{nick} read {extra[0]!r}, which it should not"
            elif twice:
                what = f"{nick} read {twice[0]!r} {got.count(twice[0])} times"
                hint = HINT_LEFT_ONCE if twice[0].endswith(" left") else HINT_ONCE
            else:
                what = f"{nick} read {describe_value(got[-4:], 100)} in another order"
            if member.ended and missing:
                what += f" (the server {'reset' if member.ended == 'reset' else 'closed'}"
                what += " its connection)"
            shown = describe_value(lines[-6:], 100)
            what += f"; expected {shown if len(lines) <= 6 else 'it to end with ' + shown}"
            raise Failure(what, hint, sent)


def _crash_hint(exc: BaseException) -> str | None:
    if isinstance(exc, NameError):
        return hint_name_error(exc)
    if isinstance(exc, RuntimeError) and "changed" in str(exc) and "during iteration" in str(exc):
        return HINT_ITERATE  # "dictionary changed size ..." or "dictionary keys changed ..."
    if isinstance(exc, OSError) and exc.errno == errno.EBADF:
        return HINT_BADF
    if isinstance(exc, OSError):  # a reset, a broken pipe, a socket closed meanwhile
        return HINT_RESET
    if isinstance(exc, UnicodeDecodeError):
        return HINT_FRAMING
    if isinstance(exc, (StopIteration, RuntimeError)) and "StopIteration" in repr(exc):
        return "next(lines) raises StopIteration when a client closes before its nickname: " \
            "use next(lines, None) and stop when it is None."  # fmt: skip
    return None


# --- many clients coming and going while messages flow ----------------------------------------

STAYERS = 3  # clients that stay in the room throughout
CHURNERS = 100  # clients that join and leave meanwhile (quit, close, reset, early reset)
CHURN_THREADS = 10  # how many of them come at once
CHURN_TIMEOUT = 30.0  # the whole scenario's bound


def churn(port: int, stayers: int = STAYERS, churners: int = CHURNERS, min_messages: int = 50):
    """Run the scenario against a chat server on ``port``; return what happened.

    ``stayers`` clients join and stay; meanwhile ``churners`` clients (``CHURN_THREADS`` at
    a time) join and leave: by /quit, by a close, by a reset after they joined, or by a
    reset right after sending their nickname. Each stayer sends numbered messages, one
    after the other (the next once it has read its own, within REPLY_TIMEOUT: else it stops),
    at least ``min_messages`` and on until the churn is over. Returns a dict: ``sent`` (per stayer), ``missing`` (per
    stayer: messages of stayers it never read), ``disorder`` (per stayer: senders whose
    messages came out of order), ``unleft`` (per stayer: churners it saw join but never
    saw leave), ``churn_errors`` (Failures of churners), ``stalled`` (True if the bound
    was hit).
    """
    deadline = time.monotonic() + CHURN_TIMEOUT
    with open_room(port) as room:
        people = [Member(room, f"stayer{i}") for i in range(stayers)]
        for person in people:  # one after the other: each has read its own join line
            person.send(f"{person.nick}\n".encode())
            if not room.wait(lambda p=person: f"* {p.nick} joined" in p.lines):
                return {"not_ready": True}
        churn_done = threading.Event()
        churn_errors: list = []
        sent = dict.fromkeys((p.nick for p in people), 0)

        def talk(person):
            number = 0
            while time.monotonic() < deadline and (
                number < min_messages or not churn_done.is_set()
            ):
                text = f"{person.nick}: message {number}"
                try:
                    person.send(f"message {number}\n".encode())
                except OSError:
                    return
                sent[person.nick] = number + 1
                if not wait_own(person, text):
                    return
                if person.ended:
                    return
                number += 1

        def wait_own(person, text) -> bool:
            """Wait for the person's own line. A slow one is waited for while other lines
            still come (a busy machine delays them all); REPLY_TIMEOUT with no line at all,
            or the scenario's end, means it is not coming (then ``missing`` names it)."""

            def arrived() -> bool:
                return text in person.lines or person.ended is not None

            while not arrived():
                seen = len(person.lines)
                if not room.wait(
                    lambda seen=seen: arrived() or len(person.lines) > seen,
                    min(REPLY_TIMEOUT, max(0.0, deadline - time.monotonic())),
                ):
                    return False  # no line at all for REPLY_TIMEOUT, or the scenario's end
            return True

        def churner(index):
            nick = f"churner{index}"
            way = index % 4
            with socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT) as sock:
                sock.sendall(f"{nick}\n".encode())
                if way == 3:
                    abort(sock)  # vanishes before it knows whether it joined
                    return
                data = b""
                while f"* {nick} joined\n".encode() not in data:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise Failure(f"{nick} was disconnected before it joined", HINT_JOIN)
                    data = data[-200:] + chunk
                if way == 0:
                    sock.sendall(b"/quit\n")
                elif way == 2:
                    abort(sock)

        def churn_some(indexes):
            for index in indexes:
                if churn_errors:
                    return  # the room is broken: the verdict says how, sooner
                try:
                    churner(index)
                except Failure as failure:
                    churn_errors.append(failure)
                except OSError as exc:
                    churn_errors.append(
                        Failure(f"churner{index} got {describe_exception(exc)}", HINT_RESET)
                    )

        talkers = [threading.Thread(target=talk, args=(p,), daemon=True) for p in people]
        workers = [
            threading.Thread(
                target=churn_some, args=(range(i, churners, CHURN_THREADS),), daemon=True
            )
            for i in range(CHURN_THREADS)
        ]
        for thread in talkers + workers:
            thread.start()
        for thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        churn_done.set()
        for thread in talkers:
            thread.join(max(0.0, deadline - time.monotonic()))
        stalled = any(t.is_alive() for t in talkers + workers)

        def everything_arrived():
            return all(
                all(f"{q.nick}: message {n}" in p.lines for q in people for n in range(sent[q.nick]))
                for p in people
            )  # fmt: skip

        def all_left():
            return all(not _unleft(p, churners) for p in people)

        room.wait(everything_arrived, 2.0)
        room.wait(all_left, 2.0)
        missing, disorder, unleft, doubled = {}, {}, {}, {}
        for person in people:
            want = [f"{q.nick}: message {n}" for q in people for n in range(sent[q.nick])]
            lines = set(person.lines)
            missing[person.nick] = [line for line in want if line not in lines]
            for other in people:
                prefix = f"{other.nick}: message "
                numbers = [
                    int(line[len(prefix) :]) for line in person.lines if line.startswith(prefix)
                ]
                if numbers != sorted(numbers):
                    disorder.setdefault(person.nick, []).append(other.nick)
            unleft[person.nick] = _unleft(person, churners)
            lefts = [line for line in person.lines if line.endswith(" left")]
            doubled[person.nick] = sorted({line for line in lefts if lefts.count(line) > 1})
        leave_one_by_one(room, people)
    return {
        "sent": sent,
        "missing": missing,
        "disorder": disorder,
        "unleft": unleft,
        "doubled": doubled,
        "churn_errors": churn_errors,
        "stalled": stalled,
    }


def _unleft(person: Member, churners: int) -> list[str]:
    lines = set(person.lines)
    return [
        f"churner{i}"
        for i in range(churners)
        if f"* churner{i} joined" in lines and f"* churner{i} left" not in lines
    ]


def _many_clients(server):
    def run():
        result = churn(server.port)
        sent = f"{STAYERS} clients stay and talk while {CHURNERS} join and leave"
        if result.get("not_ready"):
            raise Failure(
                f"one of the {STAYERS} first clients never read its own join line", HINT_JOIN, sent
            )
        for failure in result["churn_errors"][:1]:
            hint = failure.hint or HINT_RESET
            if failure.what.endswith("was disconnected before it joined"):
                hint = HINT_OTHERS_ERROR
            raise Failure(failure.what, hint, sent)
        lost = {nick: lines for nick, lines in result["missing"].items() if lines}
        if lost:
            nick, lines = next(iter(lost.items()))
            total = sum(result["sent"].values())
            raise Failure(
                f"{nick} never read {len(lines)} of the {total} messages sent, the first "
                f"{lines[0]!r}",
                HINT_LOST,
                sent,
            )
        if result["stalled"]:
            raise Failure(
                f"the clients were not served within {CHURN_TIMEOUT:g} s", HINT_ONE_AT_A_TIME, sent
            )
        for nick, senders in result["disorder"].items():
            raise Failure(
                f"{nick} read {senders[0]}'s messages out of order",
                "Send each line whole, in the order it came: one sendall() per line, and one "
                "thread sending to a socket at a time (a Lock).",
                sent,
            )
        for nick, lines in result["doubled"].items():
            if lines:
                raise Failure(f"{nick} read {lines[0]!r} twice", HINT_LEFT_ONCE, sent)
        for nick, names in result["unleft"].items():
            if names:
                raise Failure(
                    f"{nick} saw {names[0]} join but never '* {names[0]} left'", HINT_LEAVE, sent
                )

    return run


HINT_PRINTS = (
    "netlab stops a server that prints thousands of lines in one go (a runaway loop, most "
    "often). The check sends thousands of messages: print only who joins and leaves, or "
    "nothing, not every message (and not once per member)."
)


def _serve_and(func, scenario):
    def check():
        servers = []
        try:
            with serving(func, crash_hints=_crash_hint) as server:
                servers.append(server)
                scenario(server)()
        except Failure as failure:
            reason = (servers[0].stop_reason or "") if servers else ""
            if "it printed" in reason:
                raise Failure(
                    f"netlab stopped your server: it printed {RUNAWAY_LINES} lines in one go",
                    HINT_PRINTS,
                ) from None
            if inspect.iscoroutinefunction(func) and failure.hint in ASYNC_HINTS:
                raise Failure(failure.what, ASYNC_HINTS[failure.hint], failure.sent) from None
            raise

    return check


def check_chat_server(chat_server) -> object:
    """Check ``chat_server(port)``: the chat protocol, clients that leave, many at once."""
    checks = [(title, _serve_and(chat_server, lambda s, st=steps: _conversation(s, st)))
              for title, steps in CONVERSATIONS]  # fmt: skip
    checks.append(
        (
            f"{STAYERS} clients talk while {CHURNERS} others join and leave (some reset): "
            "0 messages lost",
            _serve_and(chat_server, _many_clients),
        )
    )
    return run_checks("chat_server", checks)


# --- Exercise 3: fair_chat_server ---------------------------------------------------------------

LINE_SIZE = 2000  # bytes of each flood line
SLEEPY_RCVBUF = 4096  # the client that never reads asks for a small receive buffer
NO_PROGRESS = 3.0  # seconds without a new line for the readers: the server is stalled
BURST = 50  # alice sends this many lines, then waits until she and bob have read them
HINT_STALL = (
    "One client that does not read stopped the whole room: sendall() to it waits until its "
    "buffers have room, and they never will. Never wait for one client while others "
    "wait: give each client its own bounded outbox (a queue and a sender thread, or "
    "asyncio's write buffer), and when it is full, disconnect that client or drop lines for it."
)
HINT_STALL_ASYNC = (
    "One client that does not read stopped the whole room: `await writer.drain()` for it "
    "waits until its buffers have room, and they never will. Do not await one member's "
    "drain() in the broadcast: write() (it never waits) and check "
    "writer.transport.get_write_buffer_size() against a bound; when it is over, disconnect "
    "that client (writer.transport.abort()) or drop lines for it."
)
HINT_UNBOUNDED = (
    "Nobody waits now, but the server kept every line for the client that does not read: "
    "its memory grows without limit (writer.write() without a limit, or a queue.Queue() "
    "without maxsize). Bound what waits for one client (get_write_buffer_size(), "
    "Queue(maxsize)), and disconnect it or drop lines when the bound is reached."
)

HINT_TOO_TIGHT = (
    "A client that reads all the time was disconnected: your bound is too tight for a burst. "
    f"The check has up to {BURST} lines of {LINE_SIZE} bytes on their way to a reading "
    "client: allow at least 256 lines (or 256 KiB) to wait for one client."
)


def _flood_lines() -> int:
    """Enough flood lines that a server keeping them all for one client is told apart from
    one with a bound: more than the kernel's largest send buffer plus 2 MiB."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
            largest = int(limits.read().split()[2])
    except (OSError, ValueError, IndexError):
        largest = 4 * 1024 * 1024
    return (max(largest, 4 * 1024 * 1024) + 2 * 1024 * 1024) // LINE_SIZE + 1


def _slow_consumer(server):
    def run():
        count = _flood_lines()
        sent = (
            f"sleepy joins and never reads; alice sends {count} lines of {LINE_SIZE} bytes "
            f"({BURST} at a time, each burst once she and bob have read the one before)"
        )
        with open_room(server.port) as room:
            sleepy = Member(room, "sleepy", reads=False, rcvbuf=SLEEPY_RCVBUF)
            sleepy.send(b"sleepy\n")
            server.wait_quiet(REPLY_TIMEOUT, deadlines=False)
            alice, bob = Member(room, "alice"), Member(room, "bob")
            for member in (alice, bob):
                member.send(f"{member.nick}\n".encode())
                if not room.wait(lambda m=member: f"* {m.nick} joined" in m.lines):
                    raise Failure(
                        f"{member.nick} never read '* {member.nick} joined'", HINT_JOIN, sent
                    )
            filler = "x" * (LINE_SIZE - 12)
            lines = [f"{n:05d} {filler}\n".encode() for n in range(count)]
            for start in range(0, count, BURST):  # a burst, then wait until it has come
                try:
                    alice.send(b"".join(lines[start : start + BURST]))
                except OSError:
                    pass  # the verdict says what the readers got
                due = min(count, start + BURST)
                if (
                    not room.wait(
                        lambda due=due: all(
                            m.count("alice: ") >= due or m.ended for m in (alice, bob)
                        ),
                        NO_PROGRESS,
                    )
                    or alice.ended
                    or bob.ended
                ):
                    break
            for member in (alice, bob):
                got = member.count("alice: ")
                if got < count and member.ended:
                    raise Failure(
                        f"{member.nick} read only {got} of alice's {count} lines: the server "
                        f"closed its connection, though {member.nick} read all the time",
                        HINT_TOO_TIGHT,
                        sent,
                    )
                if got < count:
                    raise Failure(
                        f"{member.nick} read only {got} of alice's {count} lines, then nothing "
                        f"more came for {NO_PROGRESS:g} s",
                        HINT_STALL,
                        sent,
                    )
            kept = _drain(sleepy)
            if kept >= count:
                raise Failure(
                    f"sleepy, reading at last, got all {count} lines ({count * LINE_SIZE} bytes "
                    "had waited for it)",
                    HINT_UNBOUNDED,
                    sent,
                )
            sleepy.sock.close()
            # the room still works, and it learns of sleepy's going when that happens
            carol = Member(room, "carol")
            carol.send(b"carol\n")
            if not room.wait(lambda: "* carol joined" in carol.lines):
                raise Failure(
                    "after the flood, carol never read '* carol joined'", HINT_STALL, sent
                )
            alice.send(b"are we still here?\n")
            want = "alice: are we still here?"
            if not room.wait(lambda: want in carol.lines and want in bob.lines):
                raise Failure(
                    "after the flood, carol or bob never read alice's line", HINT_STALL, sent
                )
            for member in (alice, bob, carol):
                member.close()

    return run


def _drain(member: Member) -> int:
    """Read what the server kept for ``member`` (until it closes, or 1 s of silence);
    return how many flood lines it holds."""
    sock = member.sock
    sock.settimeout(1.0)
    data = b""
    deadline = time.monotonic() + 20
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return data.count(b"alice: ")


ASYNC_HINTS = {  # the same advice, in asyncio's words, for an async def server
    HINT_RESET: HINT_RESET_ASYNC,
    HINT_LEAVE: HINT_LEAVE_ASYNC,
    HINT_OTHERS_ERROR: HINT_OTHERS_ERROR_ASYNC,
    HINT_STALL: HINT_STALL_ASYNC,
}


def check_fair_chat_server(fair_chat_server) -> object:
    """Check ``fair_chat_server(port)``: the protocol, and a client that never reads."""
    title, steps = CONVERSATIONS[0]
    return run_checks(
        "fair_chat_server",
        [
            (title, _serve_and(fair_chat_server, lambda s: _conversation(s, steps))),
            (
                "a client that never reads: the others get every line, and the server "
                "does not keep them all for it",
                _serve_and(fair_chat_server, _slow_consumer),
            ),
        ],
    )
