"""The checks of notebook 09 pass the reference solutions and correct answers in other
styles (threads, selectors, asyncio, makefile), and catch realistic mistakes with the
hint that fixes them. Every server here is run by the checks through netlab, on
127.0.0.1, against the checks' real client sockets.
"""

import asyncio
import codecs
import contextlib
import queue
import selectors
import socket
import threading

import pytest
from exercise_asserts import stub

from helpers.exercises import nb09
from helpers.exercises.solutions import nb09 as sol09
from helpers.servers import chat


def fails_with(verdict, hint_part: str) -> None:
    assert not verdict.passed, verdict.text()
    assert hint_part in verdict.hint, verdict.text()


@pytest.mark.parametrize(
    "check, solution",
    [
        (nb09.check_read_lines, sol09.read_lines),
        (nb09.check_chat_server, sol09.chat_server),
        (nb09.check_fair_chat_server, sol09.fair_chat_server),
    ],
)
def test_nb09_solutions_pass_and_stubs_are_not_done(check, solution):
    verdict = check(solution)
    assert verdict.passed, verdict.text()
    verdict = check(stub)
    assert verdict.not_done and "not done yet" in verdict.text()


# --- Exercise 1: read_lines -------------------------------------------------------------------


def lines_from_makefile(sock):
    with sock.makefile("rb") as stream:
        for line in stream:
            yield line.rstrip(b"\n").removesuffix(b"\r").decode("utf-8")


def lines_from_text_file(sock):
    stream = sock.makefile("r", encoding="utf-8", newline="\n")  # only "\n" ends a line
    for line in stream:
        yield line.removesuffix("\n").removesuffix("\r")


def lines_byte_by_byte(sock):
    line = bytearray()
    while byte := sock.recv(1):
        if byte == b"\n":
            yield line.decode().removesuffix("\r")
            line.clear()
        else:
            line += byte
    if line:
        yield line.decode().removesuffix("\r")


def lines_with_incremental_decoder(sock):
    decoder = codecs.getincrementaldecoder("utf-8")()
    text = ""
    while data := sock.recv(1024):
        text += decoder.decode(data)
        *complete, text = text.split("\n")
        for line in complete:
            yield line.removesuffix("\r")
    text += decoder.decode(b"", final=True)
    if text:
        yield text.removesuffix("\r")


@pytest.mark.parametrize(
    "answer",
    [
        lines_from_makefile,
        lines_from_text_file,
        lines_byte_by_byte,
        lines_with_incremental_decoder,
    ],
)
def test_read_lines_other_styles_pass(answer):
    verdict = nb09.check_read_lines(answer)
    assert verdict.passed, verdict.text()


def decodes_each_chunk(sock):
    text = ""
    while data := sock.recv(4096):
        text += data.decode("utf-8")
        while "\n" in text:
            line, _, text = text.partition("\n")
            yield line.removesuffix("\r")
    if text:
        yield text


def each_recv_is_a_line(sock):
    while data := sock.recv(4096):
        yield data.decode("utf-8").rstrip("\r\n")


def drops_the_rest_of_each_chunk(sock):
    while data := sock.recv(4096):
        *complete, _rest = data.split(b"\n")
        for line in complete:
            yield line.removesuffix(b"\r").decode()


def forgets_the_last_line(sock):
    buffer = b""
    while data := sock.recv(4096):
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line.removesuffix(b"\r").decode()


def keeps_the_cr(sock):
    buffer = b""
    while data := sock.recv(4096):
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line.decode()
    if buffer:
        yield buffer.decode()


def yields_bytes(sock):
    buffer = b""
    while data := sock.recv(4096):
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line.removesuffix(b"\r")
    if buffer:
        yield buffer


def never_stops(sock):
    buffer = b""
    while True:
        buffer += sock.recv(4096)
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line.removesuffix(b"\r").decode()


def collects_until_the_end(sock):
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    lines = data.decode().split("\n")
    if lines[-1] == "":
        lines.pop()  # the text ended with a line end
    return [line.removesuffix("\r") for line in lines]


@pytest.mark.parametrize(
    "answer, hint",
    [
        (decodes_each_chunk, "decode only whole lines"),
        (each_recv_is_a_line, "Keep a buffer of bytes"),
        (drops_the_rest_of_each_chunk, "Bytes after the last b'\\n'"),
        (forgets_the_last_line, "yield them as the last line"),
        (keeps_the_cr, "remove a b'\\r'"),
        (yields_bytes, "Yield str, not bytes"),
        (never_stops, "`if not data: break`"),
    ],
)
def test_read_lines_mistakes_get_their_hint(answer, hint):
    fails_with(nb09.check_read_lines(answer), hint)


def test_read_lines_that_waits_for_the_end_is_told_to_yield():
    """A function that returns a list once the peer closes would pass every case of bytes,
    but a chat would show nothing until the end: the first check says so."""
    verdict = nb09.check_read_lines(collects_until_the_end)
    assert not verdict.passed
    assert verdict.outcomes[0].status == "fail"  # the first check, before the cases of bytes
    fails_with(verdict, "Write a generator")


def test_read_lines_as_async_def_is_told():
    async def read_lines(sock):
        return []

    fails_with(nb09.check_read_lines(read_lines), "coroutine function")


# --- Exercise 2 and 3: servers in other styles ------------------------------------------------


def selector_chat_server(port, limit=256 * 1024):
    """One thread, a selectors loop: each client has an input and an output buffer; a
    client whose output buffer passes ``limit`` bytes is dropped."""
    selector = selectors.DefaultSelector()
    listener = socket.create_server(("127.0.0.1", port))
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    state = {}  # sock -> {"in": bytearray, "out": bytearray, "nick": str | None}

    def send_to(sock, data):
        me = state[sock]
        if len(me["out"]) + len(data) > limit:
            drop(sock)
            return
        me["out"] += data
        selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, "client")

    def broadcast(text):
        for sock in list(state):
            if sock in state and state[sock]["nick"] is not None:
                send_to(sock, (text + "\n").encode())

    def drop(sock):
        me = state.pop(sock, None)
        if me is None:
            return
        selector.unregister(sock)
        sock.close()
        if me["nick"] is not None:
            broadcast(f"* {me['nick']} left")

    while True:
        for key, events in selector.select():
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(False)
                state[conn] = {"in": bytearray(), "out": bytearray(), "nick": None}
                selector.register(conn, selectors.EVENT_READ, "client")
                continue
            sock = key.fileobj
            if events & selectors.EVENT_WRITE and sock in state:
                try:
                    sent = sock.send(state[sock]["out"])
                    del state[sock]["out"][:sent]
                    if not state[sock]["out"]:
                        selector.modify(sock, selectors.EVENT_READ, "client")
                except BlockingIOError:
                    pass
                except OSError:
                    drop(sock)
            if events & selectors.EVENT_READ and sock in state:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    drop(sock)
                    continue
                me = state[sock]
                me["in"] += data
                while sock in state and b"\n" in me["in"]:
                    raw, _, rest = bytes(me["in"]).partition(b"\n")
                    me["in"] = bytearray(rest)
                    line = raw.removesuffix(b"\r").decode()
                    if me["nick"] is None:
                        me["nick"] = line
                        broadcast(f"* {line} joined")
                    elif line == "/quit":
                        drop(sock)
                    else:
                        broadcast(f"{me['nick']}: {line}")


def queue_chat_server(port):
    """Threads and one queue: readers put events, one broadcaster sends, over a copy of
    the members, each send under try (the notebook's fixed server, without outboxes)."""
    events = queue.Queue()
    members = {}
    lock = threading.Lock()

    def broadcaster():
        while True:
            text = events.get()
            with lock:
                targets = list(members)
            for conn in targets:
                try:
                    conn.sendall((text + "\n").encode())
                except OSError:
                    pass

    def reader(conn):
        nick = None
        try:
            with conn.makefile("rb") as stream:
                for raw in stream:
                    line = raw.rstrip(b"\r\n").decode()
                    if nick is None:
                        nick = line
                        with lock:
                            members[conn] = nick
                        events.put(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        events.put(f"{nick}: {line}")
        except OSError:
            pass
        finally:
            with lock:
                members.pop(conn, None)
            if nick is not None:
                events.put(f"* {nick} left")
            # the broadcaster may still send to it: shut it down, close when sent is done
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=broadcaster, daemon=True).start()
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=reader, args=(conn,), daemon=True).start()


def bounded_queue_chat_server(port, limit=256, wait_when_full=False):
    """Threads: a bounded outbox and a sender thread per client; put_nowait, and a full
    outbox disconnects that client (the reference of Exercise 3 in threads). With
    ``wait_when_full`` (a mistake) the broadcast waits instead: put(), not put_nowait()."""
    outboxes = {}
    lock = threading.Lock()

    def sender(conn, outbox):
        try:
            while (data := outbox.get()) is not None:
                conn.sendall(data)
        except OSError:
            pass

    def broadcast(text):
        if wait_when_full:
            with lock:
                targets = list(outboxes.values())
            for outbox in targets:
                outbox.put((text + "\n").encode())  # waits while that outbox is full
            return
        with lock:
            for conn, outbox in list(outboxes.items()):
                try:
                    outbox.put_nowait((text + "\n").encode())
                except queue.Full:
                    del outboxes[conn]
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)

    def reader(conn):
        outbox = queue.Queue(limit)
        thread = threading.Thread(target=sender, args=(conn, outbox), daemon=True)
        thread.start()
        nick = None
        try:
            for line in sol09.read_lines(conn):
                if nick is None:
                    nick = line
                    with lock:
                        outboxes[conn] = outbox
                    broadcast(f"* {nick} joined")
                elif line == "/quit":
                    break
                else:
                    broadcast(f"{nick}: {line}")
        except (OSError, UnicodeDecodeError):
            pass
        finally:
            with lock:
                outboxes.pop(conn, None)
            if nick is not None:
                broadcast(f"* {nick} left")
            try:
                outbox.put_nowait(None)
            except queue.Full:
                pass
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            thread.join(2)
            conn.close()

    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=reader, args=(conn,), daemon=True).start()


@pytest.mark.parametrize(
    "answer",
    [
        sol09.fair_chat_server,
        chat.chat_server,
        selector_chat_server,
        queue_chat_server,
        bounded_queue_chat_server,
    ],
)
def test_chat_server_other_styles_pass(answer):
    verdict = nb09.check_chat_server(answer)
    assert verdict.passed, verdict.text()


@pytest.mark.parametrize(
    "answer", [chat.chat_server, selector_chat_server, bounded_queue_chat_server]
)
def test_fair_chat_server_other_styles_pass(answer):
    verdict = nb09.check_fair_chat_server(answer)
    assert verdict.passed, verdict.text()


# --- Exercise 2: mistakes ------------------------------------------------------------------------


def threaded_chat(
    port,
    lock_dict=True,
    catch_send=True,
    catch_recv=True,
    framing="lines",
    to_newcomer=True,
    to_sender=True,
    handles_quit=True,
    start_threads=True,
    register_first=True,
):
    """A thread-per-client chat server with one of the mistakes learners make, by flag."""
    clients = {}
    lock = threading.Lock() if lock_dict else contextlib.nullcontext()
    survivable = (ConnectionError, UnicodeDecodeError) if catch_recv else ()

    def broadcast(text, skip=None):
        data = (text + "\n").encode()
        if lock_dict:
            with lock:
                targets = list(clients)
        else:
            targets = clients  # the live dict: other threads add and remove meanwhile
        for member in targets:
            if member is skip:
                continue
            if catch_send:
                try:
                    member.sendall(data)
                except OSError:
                    pass
            else:
                member.sendall(data)

    def lines(conn):
        if framing == "recv":  # each recv() taken as one line
            while data := conn.recv(4096):
                yield data.decode().rstrip("\r\n")
            return
        if framing == "decode-chunks":
            text = ""
            while data := conn.recv(4096):
                text += data.decode()
                while "\n" in text:
                    line, _, text = text.partition("\n")
                    yield line.removesuffix("\r")
            return
        yield from sol09.read_lines(conn)

    def serve_client(conn):
        nick = None
        with conn:
            try:
                for line in lines(conn):
                    if nick is None:
                        nick = line
                        if register_first:
                            with lock:
                                clients[conn] = nick
                            broadcast(f"* {nick} joined", skip=None if to_newcomer else conn)
                        else:
                            broadcast(f"* {nick} joined")
                            with lock:
                                clients[conn] = nick
                    elif line == "/quit" and handles_quit:
                        break
                    else:
                        broadcast(f"{nick}: {line}", skip=None if to_sender else conn)
            except survivable:
                pass
            finally:
                with lock:
                    clients.pop(conn, None)
                if nick is not None:
                    broadcast(f"* {nick} left")

    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            thread = threading.Thread(target=serve_client, args=(conn,), daemon=True)
            if start_threads:
                thread.start()
            else:
                thread.run()


def mistake(**flags):
    def server(port):
        threaded_chat(port, **flags)

    server.__name__ = "chat_server"
    return server


def test_threaded_template_without_mistakes_passes():
    verdict = nb09.check_chat_server(mistake())
    assert verdict.passed, verdict.text()


@pytest.mark.parametrize(
    "flags, hint",
    [
        ({"to_newcomer": False}, "the newcomer included"),
        ({"register_first": False}, "the newcomer included"),
        ({"to_sender": False}, "the sender included"),
        ({"handles_quit": False}, "A line '/quit' is no message"),
        ({"framing": "recv"}, "recv() returns whatever has arrived"),
        ({"framing": "decode-chunks"}, "a UTF-8 letter may be split"),
        ({"catch_recv": False}, "Catch OSError around the"),
        # an uncaught send error shows as a reset, as a newcomer dropped, or (when the
        # sender's thread then closed its socket under others) as 'Bad file descriptor':
        # each of the three hints names the missing try around each send
        ({"catch_send": False}, "around each send"),
        ({"start_threads": False}, "one client at a time"),
    ],
)
def test_chat_server_mistakes_get_their_hint(flags, hint):
    fails_with(nb09.check_chat_server(mistake(**flags)), hint)


def test_chat_server_iterating_the_live_dict_is_caught():
    """PITFALLS row 15: the broadcast goes through the dict that other threads change.
    The churn of 100 clients makes 'dictionary changed size during iteration' happen."""
    verdict = nb09.check_chat_server(mistake(lock_dict=False))
    fails_with(verdict, "changed size during iteration")
    # the size changed, or (one joined as another left) only the keys: both are the race
    messages = ("dictionary changed size during iteration", "dictionary keys changed during")
    assert any(f"RuntimeError: {m}" in verdict.text() for m in messages), verdict.text()


def test_a_server_that_forgets_leaves_of_vanished_clients_is_caught():
    """Resets are caught, but a reset member is never announced as gone."""

    def chat_server(port):
        clients = {}
        lock = threading.Lock()

        def broadcast(text):
            with lock:
                for member in list(clients):
                    with contextlib.suppress(OSError):
                        member.sendall((text + "\n").encode())

        def serve_client(conn):
            lines = sol09.read_lines(conn)
            try:
                nick = next(lines, None)
                if nick is None:
                    return
                with lock:
                    clients[conn] = nick
                broadcast(f"* {nick} joined")
                for line in lines:
                    if line == "/quit":
                        break
                    broadcast(f"{nick}: {line}")
                with lock:
                    del clients[conn]
                broadcast(f"* {nick} left")
            except OSError:
                with lock:
                    clients.pop(conn, None)  # forgotten: the others are not told
            finally:
                conn.close()

        with socket.create_server(("127.0.0.1", port)) as listener:
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve_client, args=(conn,), daemon=True).start()

    fails_with(nb09.check_chat_server(chat_server), "vanishes")


# --- Exercise 3: mistakes ------------------------------------------------------------------------


def test_blocking_broadcast_stalls_the_room():
    """Exercise 2's reference sends under its lock with sendall: one client that does not
    read stops everyone."""
    fails_with(nb09.check_fair_chat_server(sol09.chat_server), "stopped the whole room")


async def asyncio_unbounded(port):
    writers = {}

    async def handle(reader, writer):
        nick = (await reader.readline()).decode().strip()
        writers[writer] = nick
        for w in list(writers):
            w.write(f"* {nick} joined\n".encode())
        try:
            while line := await reader.readline():
                text = line.decode().rstrip("\r\n")
                if text == "/quit":
                    break
                for w in list(writers):
                    w.write(f"{nick}: {text}\n".encode())  # no limit: buffers grow
        except ConnectionError:
            pass
        finally:
            writers.pop(writer, None)
            for w in list(writers):
                w.write(f"* {nick} left\n".encode())
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def asyncio_drain_each(port):
    writers = {}

    async def broadcast(text):
        for w in list(writers):
            w.write(f"{text}\n".encode())
            with contextlib.suppress(ConnectionError):
                await w.drain()  # waits for the slowest reader: everyone waits

    async def handle(reader, writer):
        nick = (await reader.readline()).decode().strip()
        writers[writer] = nick
        await broadcast(f"* {nick} joined")
        try:
            while line := await reader.readline():
                text = line.decode().rstrip("\r\n")
                if text == "/quit":
                    break
                await broadcast(f"{nick}: {text}")
        except ConnectionError:
            pass
        finally:
            writers.pop(writer, None)
            await broadcast(f"* {nick} left")
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def unbounded_queue_chat_server(port):
    bounded_queue_chat_server(port, limit=0)  # Queue(0): no bound at all


def blocking_put_chat_server(port):
    """Bounded outboxes, but a full one makes the broadcaster wait (put, not put_nowait)."""
    bounded_queue_chat_server(port, limit=100, wait_when_full=True)


def tight_queue_chat_server(port):
    bounded_queue_chat_server(port, limit=5)  # 5 lines: less than one burst of the check


@pytest.mark.parametrize(
    "answer, hint",
    [
        (tight_queue_chat_server, "your bound is too tight"),
        (asyncio_unbounded, "grows without limit"),
        (unbounded_queue_chat_server, "grows without limit"),
        (asyncio_drain_each, "stopped the whole room"),
        (blocking_put_chat_server, "stopped the whole room"),
    ],
)
def test_fair_chat_server_mistakes_get_their_hint(answer, hint):
    fails_with(nb09.check_fair_chat_server(answer), hint)


async def asyncio_policy(port, disconnect=False, print_each=False):
    """asyncio: a client whose write buffer is over the limit loses lines (it stays), or
    with ``disconnect`` is aborted; ``print_each`` prints each line once per member."""
    writers = {}
    limit = 256 * 1024

    def broadcast(text):
        for w in list(writers):
            if print_each:
                print(f"to {writers[w]}: {text[:30]}")
            if w.transport.get_write_buffer_size() <= limit:
                w.write(f"{text}\n".encode())
            elif disconnect:
                del writers[w]
                w.transport.abort()
            # else: dropped for that client

    async def handle(reader, writer):
        nick = None
        try:
            nick = (await reader.readline()).decode().rstrip("\r\n")
            writers[writer] = nick
            broadcast(f"* {nick} joined")
            while line := await reader.readline():
                text = line.decode().rstrip("\r\n")
                if text == "/quit":
                    break
                broadcast(f"{nick}: {text}")
        except (ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writers.pop(writer, None)
            writer.transport.abort()
            if nick:
                broadcast(f"* {nick} left")

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def asyncio_dropping(port):
    await asyncio_policy(port)


def test_fair_chat_server_dropping_lines_passes():
    """A drop policy (lines for a full client are dropped, it stays) is fine too."""
    verdict = nb09.check_fair_chat_server(asyncio_dropping)
    assert verdict.passed, verdict.text()


async def asyncio_printing_per_member(port):
    """The disconnect policy, printing each line once per member: thousands of lines."""
    await asyncio_policy(port, disconnect=True, print_each=True)


def test_a_server_that_prints_every_line_per_member_is_told_why_netlab_stopped_it():
    fails_with(nb09.check_fair_chat_server(asyncio_printing_per_member), "print only who joins")


# --- the independent review's attempts (/work/notes/attempts/nb09 at the time of writing) ----
# Each factory holds a reviewer's learner code as it was written and returns the function.


def e1_w04_only_at_eof():
    """The reviewer's e1_w04_only_at_eof.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
        for line in buf.split(b"\n"):
            yield line.rstrip(b"\r").decode()

    return read_lines


def e1_w07_extra_empty_at_eof():
    """The reviewer's e1_w07_extra_empty_at_eof.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode()
        yield buf.decode()

    return read_lines


def e1_w08_strip_whitespace():
    """The reviewer's e1_w08_strip_whitespace.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.decode().strip()
        if buf.strip():
            yield buf.decode().strip()

    return read_lines


def e1_w10_text_makefile_universal():
    """The reviewer's e1_w10_text_makefile_universal.py."""

    def read_lines(sock):
        f = sock.makefile("r", encoding="utf-8")
        for line in f:
            yield line.rstrip("\n")

    return read_lines


def e1_w11_short_recv_means_eof():
    """The reviewer's e1_w11_short_recv_means_eof.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode()
            if len(data) < 4096:
                break
        if buf:
            yield buf.decode()

    return read_lines


def e1_w12_replace_all_cr():
    """The reviewer's e1_w12_replace_all_cr.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data.replace(b"\r", b"")
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.decode()
        if buf:
            yield buf.decode()

    return read_lines


def e1_w14_one_line_per_recv():
    """The reviewer's e1_w14_one_line_per_recv.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            if b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.removesuffix(b"\r").decode()
        for line in buf.split(b"\n"):
            if line:
                yield line.removesuffix(b"\r").decode()

    return read_lines


def e1_w15_rstrip_cr_all():
    """The reviewer's e1_w15_rstrip_cr_all.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                yield line.decode().rstrip("\r\n ")
        if buf:
            yield buf.decode()

    return read_lines


def e1_w19_one_line_per_recv_keep_empty():
    """The reviewer's e1_w19_one_line_per_recv_keep_empty.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            if b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.removesuffix(b"\r").decode()
        lines = buf.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        for line in lines:
            yield line.removesuffix(b"\r").decode()

    return read_lines


def e1_w20_keeps_newline():
    """The reviewer's e1_w20_keeps_newline.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                i = buf.index(b"\n") + 1
                line, buf = buf[:i], buf[i:]
                yield line.decode()
        if buf:
            yield buf.decode()

    return read_lines


def e1_c1_buffer_split():
    """The reviewer's e1_c1_buffer_split.py."""

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
                yield line.decode("utf-8")
        if buf:
            if buf.endswith(b"\r"):
                buf = buf[:-1]
            yield buf.decode("utf-8")

    return read_lines


def e1_c2_makefile():
    """The reviewer's e1_c2_makefile.py."""

    def read_lines(sock):
        f = sock.makefile("rb")
        for raw in f:
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
            yield raw.decode("utf-8")

    return read_lines


def e1_c3_incremental_decoder():
    """The reviewer's e1_c3_incremental_decoder.py."""
    import codecs

    def read_lines(sock):
        dec = codecs.getincrementaldecoder("utf-8")()
        text = ""
        while True:
            data = sock.recv(65536)
            if not data:
                text += dec.decode(b"", final=True)
                break
            text += dec.decode(data)
            while "\n" in text:
                line, text = text.split("\n", 1)
                yield line[:-1] if line.endswith("\r") else line
        if text:
            yield text

    return read_lines


def e1_c4_bytearray_find():
    """The reviewer's e1_c4_bytearray_find.py."""

    def read_lines(sock):
        buf = bytearray()
        start = 0
        while True:
            data = sock.recv(8192)
            if not data:
                break
            buf += data
            while True:
                i = buf.find(b"\n", start)
                if i < 0:
                    start = len(buf)
                    break
                line = bytes(buf[:i])
                del buf[: i + 1]
                start = 0
                if line.endswith(b"\r"):
                    line = line[:-1]
                yield line.decode("utf-8")
        if buf:
            yield bytes(buf).decode("utf-8")

    return read_lines


def e1_c5_partition_recv1k():
    """The reviewer's e1_c5_partition_recv1k.py."""

    def read_lines(sock):
        pending = b""
        while True:
            chunk = sock.recv(1024)
            if chunk == b"":
                if pending:
                    yield pending.decode()
                return
            pending += chunk
            while b"\n" in pending:
                line, _, pending = pending.partition(b"\n")
                yield line.removesuffix(b"\r").decode()

    return read_lines


def e1_c6_makefile_readline_loop():
    """The reviewer's e1_c6_makefile_readline_loop.py."""

    def read_lines(sock):
        f = sock.makefile("rb")
        while True:
            raw = f.readline()
            if not raw:
                return
            if raw[-1:] == b"\n":
                raw = raw[:-1]
                if raw[-1:] == b"\r":
                    raw = raw[:-1]
            yield str(raw, "utf-8")

    return read_lines


def e1_c7_recv_one_byte():
    """The reviewer's e1_c7_recv_one_byte.py."""

    def read_lines(sock):
        line = bytearray()
        while True:
            b = sock.recv(1)
            if not b:
                break
            if b == b"\n":
                if line.endswith(b"\r"):
                    del line[-1]
                yield line.decode("utf-8")
                line.clear()
            else:
                line += b
        if line:
            yield line.decode("utf-8")

    return read_lines


def e2_w18_no_newline():
    """The reviewer's e2_w18_no_newline.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = text.encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    pass  # its own thread will notice and remove it

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    was_in = clients.pop(conn, None) is not None
                if was_in:
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_w20_asyncio_reset_uncaught():
    """The reviewer's e2_w20_asyncio_reset_uncaught.py."""
    import asyncio

    async def chat_server(port):
        writers = {}  # writer -> nick

        def broadcast(text):
            data = (text + "\n").encode()
            for w in list(writers):
                if w.is_closing():
                    continue
                w.write(data)

        async def handle(reader, writer):
            nick = None
            if True:
                while True:
                    raw = await reader.readline()
                    if not raw:
                        break
                    line = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        writers[writer] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
                    await writer.drain()
            if writers.pop(writer, None) is not None:
                broadcast(f"* {nick} left")
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    return chat_server


def e2_w21_asyncio_drain_live_dict():
    """The reviewer's e2_w21_asyncio_drain_live_dict.py."""
    import asyncio

    async def chat_server(port):
        writers = {}  # writer -> nick

        async def broadcast(text):
            data = (text + "\n").encode()
            for w in writers:
                w.write(data)
                await w.drain()

        async def handle(reader, writer):
            nick = None
            try:
                while True:
                    raw = await reader.readline()
                    if not raw:
                        break
                    line = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        writers[writer] = nick
                        await broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        await broadcast(f"{nick}: {line}")
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if writers.pop(writer, None) is not None:
                    await broadcast(f"* {nick} left")
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    return chat_server


def e2_w24_left_for_nameless():
    """The reviewer's e2_w24_left_for_nameless.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    pass  # its own thread will notice and remove it

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    clients.pop(conn, None)
                broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_w26_double_left():
    """The reviewer's e2_w26_double_left.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    with lock:
                        nick = clients.pop(s, None)
                    broadcast(f"* {nick} left")

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    clients.pop(conn, None)
                if nick is not None:
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_probe_msg_twice():
    """The reviewer's e2_probe_msg_twice.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    pass  # its own thread will notice and remove it

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    was_in = clients.pop(conn, None) is not None
                if was_in:
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_probe_left_twice():
    """The reviewer's e2_probe_left_twice.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    pass  # its own thread will notice and remove it

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    was_in = clients.pop(conn, None) is not None
                if was_in:
                    broadcast(f"* {nick} left")
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_w22_others_send_error_drops_sender():
    """The reviewer's e2_w22_others_send_error_drops_sender.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                s.sendall(data)  # an error here ends *this* client's loop below

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    was_in = clients.pop(conn, None) is not None
                if was_in:
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_c1_threads_lock():
    """The reviewer's e2_c1_threads_lock.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients)
            for s in targets:
                if s is exclude:
                    continue
                try:
                    s.sendall(data)
                except OSError:
                    pass  # its own thread will notice and remove it

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    was_in = clients.pop(conn, None) is not None
                if was_in:
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_c2_threads_queue_broadcaster():
    """The reviewer's e2_c2_threads_queue_broadcaster.py."""
    import queue
    import socket
    import threading

    def chat_server(port):
        events = queue.Queue()  # ("join", conn, nick) / ("msg", conn, text) / ("leave", conn, None)

        def reader(conn):
            buf = b""
            nick = None
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        break
                    buf += data
                    while b"\n" in buf:
                        raw, _, buf = buf.partition(b"\n")
                        line = raw.removesuffix(b"\r").decode("utf-8", "replace")
                        if nick is None:
                            nick = line
                            events.put(("join", conn, nick))
                        elif line == "/quit":
                            return
                        else:
                            events.put(("msg", conn, line))
                if buf and nick is not None:
                    events.put(("msg", conn, buf.removesuffix(b"\r").decode("utf-8", "replace")))
            except OSError:
                pass
            finally:
                events.put(("leave", conn, None))

        def broadcaster():
            clients = {}  # only this thread touches it

            def send_all(text):
                data = (text + "\n").encode()
                dead = []
                for c in list(clients):
                    try:
                        c.sendall(data)
                    except OSError:
                        dead.append(c)
                for c in dead:
                    drop(c)

            def drop(c):
                nick = clients.pop(c, None)
                try:
                    c.close()
                except OSError:
                    pass
                if nick is not None:
                    send_all(f"* {nick} left")

            while True:
                kind, conn, arg = events.get()
                if kind == "join":
                    clients[conn] = arg
                    send_all(f"* {arg} joined")
                elif kind == "msg":
                    if conn in clients:
                        send_all(f"{clients[conn]}: {arg}")
                elif kind == "leave":
                    if conn in clients:
                        drop(conn)
                    else:
                        try:
                            conn.close()
                        except OSError:
                            pass

        threading.Thread(target=broadcaster, daemon=True).start()
        srv = socket.create_server(("127.0.0.1", port), reuse_port=False)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=reader, args=(conn,), daemon=True).start()

    return chat_server


def e2_c3_selectors():
    """The reviewer's e2_c3_selectors.py."""
    import selectors
    import socket

    def chat_server(port):
        sel = selectors.DefaultSelector()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(100)
        srv.setblocking(False)
        sel.register(srv, selectors.EVENT_READ)
        state = {}  # sock -> {"nick":..., "inb": bytearray, "outb": bytearray}

        def update(s):
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if state[s]["outb"] else 0)
            sel.modify(s, ev)

        def send(s, text):
            state[s]["outb"] += (text + "\n").encode()
            update(s)

        def broadcast(text):
            for s, st in list(state.items()):
                if st["nick"] is not None:
                    send(s, text)

        def drop(s):
            st = state.pop(s, None)
            if st is None:
                return
            sel.unregister(s)
            s.close()
            if st["nick"] is not None:
                broadcast(f"* {st['nick']} left")

        def on_line(s, line):
            st = state[s]
            if st["nick"] is None:
                st["nick"] = line
                broadcast(f"* {line} joined")
            elif line == "/quit":
                drop(s)
            else:
                broadcast(f"{st['nick']}: {line}")

        while True:
            for key, mask in sel.select():
                s = key.fileobj
                if s is srv:
                    try:
                        c, _ = srv.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    state[c] = {"nick": None, "inb": bytearray(), "outb": bytearray()}
                    sel.register(c, selectors.EVENT_READ)
                    continue
                if s not in state:
                    continue
                if mask & selectors.EVENT_READ:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        drop(s)
                        continue
                    if data == b"":
                        st = state[s]
                        if st["inb"]:
                            on_line(
                                s, bytes(st["inb"]).removesuffix(b"\r").decode("utf-8", "replace")
                            )
                        drop(s)
                        continue
                    if data:
                        st = state[s]
                        st["inb"] += data
                        while s in state:
                            i = st["inb"].find(b"\n")
                            if i < 0:
                                break
                            raw = bytes(st["inb"][:i]).removesuffix(b"\r")
                            del st["inb"][: i + 1]
                            on_line(s, raw.decode("utf-8", "replace"))
                if s in state and mask & selectors.EVENT_WRITE:
                    st = state[s]
                    try:
                        n = s.send(st["outb"])
                        del st["outb"][:n]
                        update(s)
                    except BlockingIOError:
                        pass
                    except OSError:
                        drop(s)

    return chat_server


def e2_c4_asyncio():
    """The reviewer's e2_c4_asyncio.py."""
    import asyncio

    async def chat_server(port):
        writers = {}  # writer -> nick

        def broadcast(text):
            data = (text + "\n").encode()
            for w in list(writers):
                if w.is_closing():
                    continue
                w.write(data)

        async def handle(reader, writer):
            nick = None
            try:
                while True:
                    raw = await reader.readline()
                    if not raw:
                        break
                    line = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        writers[writer] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                if writers.pop(writer, None) is not None:
                    broadcast(f"* {nick} left")
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    return chat_server


def e2_c5_send_under_lock():
    """The reviewer's e2_c5_send_under_lock.py."""
    import socket
    import threading

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def chat_server(port):
        clients = {}  # socket -> nick
        lock = threading.Lock()

        def broadcast(text, exclude=None):
            data = (text + "\n").encode("utf-8")
            with lock:
                for s in clients:
                    if s is exclude:
                        continue
                    try:
                        s.sendall(data)
                    except OSError:
                        pass

        def handle(conn):
            nick = None
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        with lock:
                            clients[conn] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    was_in = clients.pop(conn, None) is not None
                if was_in:
                    broadcast(f"* {nick} left")
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return chat_server


def e2_c6_socketserver():
    """The reviewer's e2_c6_socketserver.py."""
    import socketserver
    import threading

    clients = {}
    lock = threading.Lock()

    def broadcast(text):
        data = (text + "\n").encode()
        with lock:
            targets = list(clients)
        for w in targets:
            try:
                w.sendall(data)
            except OSError:
                pass

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            nick = None
            try:
                for raw in self.rfile:
                    line = raw.rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        with lock:
                            clients[self.request] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    gone = clients.pop(self.request, None)
                if gone is not None:
                    broadcast(f"* {nick} left")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    def chat_server(port):
        with Server(("127.0.0.1", port), Handler) as srv:
            srv.serve_forever()

    return chat_server


def e2_c7_socketserver_backlog128():
    """The reviewer's e2_c7_socketserver_backlog128.py."""
    import socketserver
    import threading

    clients = {}
    lock = threading.Lock()

    def broadcast(text):
        data = (text + "\n").encode()
        with lock:
            targets = list(clients)
        for w in targets:
            try:
                w.sendall(data)
            except OSError:
                pass

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            nick = None
            try:
                for raw in self.rfile:
                    line = raw.rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        with lock:
                            clients[self.request] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    gone = clients.pop(self.request, None)
                if gone is not None:
                    broadcast(f"* {nick} left")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 128

    def chat_server(port):
        with Server(("127.0.0.1", port), Handler) as srv:
            srv.serve_forever()

    return chat_server


def e3_c1_threads_bounded_queue_kick():
    """The reviewer's e3_c1_threads_bounded_queue_kick.py."""
    import queue
    import socket
    import threading

    MAX_LINES = 1000  # at most this many lines wait for one client

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def fair_chat_server(port):
        clients = {}  # conn -> (nick, queue)
        lock = threading.Lock()

        def kick(conn):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def broadcast(text):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients.items())
            for conn, (nick, q) in targets:  # noqa: B007 - as the reviewer wrote it
                try:
                    q.put_nowait(data)
                except queue.Full:
                    kick(conn)  # too slow: its reader thread sees the end and removes it

        def writer(conn, q):
            try:
                while True:
                    data = q.get()
                    if data is None:
                        return
                    conn.sendall(data)
            except OSError:
                kick(conn)

        def handle(conn):
            nick = None
            q = queue.Queue(maxsize=MAX_LINES)
            threading.Thread(target=writer, args=(conn, q), daemon=True).start()
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        print("joined:", nick)
                        with lock:
                            clients[conn] = (nick, q)
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    gone = clients.pop(conn, None)
                if gone is not None:
                    print("left:", nick)
                    broadcast(f"* {nick} left")
                q.put(None)
                kick(conn)
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return fair_chat_server


def e3_c2_asyncio_abort():
    """The reviewer's e3_c2_asyncio_abort.py."""
    import asyncio

    LIMIT = 1 << 20  # 1 MiB waiting for one client

    async def fair_chat_server(port):
        writers = {}  # writer -> nick

        def broadcast(text):
            data = (text + "\n").encode()
            for w in list(writers):
                if w.is_closing():
                    continue
                if w.transport.get_write_buffer_size() + len(data) > LIMIT:
                    w.transport.abort()  # too slow: disconnect it
                    continue
                w.write(data)

        async def handle(reader, writer):
            nick = None
            try:
                while True:
                    raw = await reader.readline()
                    if not raw:
                        break
                    line = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        print("joined", nick)
                        writers[writer] = nick
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except (ConnectionError, OSError):
                pass
            finally:
                if writers.pop(writer, None) is not None:
                    print("left", nick)
                    broadcast(f"* {nick} left")
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    return fair_chat_server


def e3_c3_selectors_bounded():
    """The reviewer's e3_c3_selectors_bounded.py."""
    import selectors
    import socket

    LIMIT = 1 << 20

    def fair_chat_server(port):
        sel = selectors.DefaultSelector()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(100)
        srv.setblocking(False)
        sel.register(srv, selectors.EVENT_READ)
        state = {}  # sock -> {"nick":..., "inb": bytearray, "outb": bytearray}

        def update(s):
            ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if state[s]["outb"] else 0)
            sel.modify(s, ev)

        def send(s, text):
            st = state[s]
            data = (text + "\n").encode()
            if len(st["outb"]) + len(data) > LIMIT:
                st["kick"] = True  # too slow: drop it after this round
                return
            st["outb"] += data
            update(s)

        def broadcast(text):
            for s, st in list(state.items()):
                if s in state and st["nick"] is not None and not st.get("kick"):
                    send(s, text)
            for s, st in list(state.items()):
                if st.get("kick"):
                    drop(s)

        def drop(s):
            st = state.pop(s, None)
            if st is None:
                return
            sel.unregister(s)
            s.close()
            if st["nick"] is not None:
                broadcast(f"* {st['nick']} left")

        def on_line(s, line):
            st = state[s]
            if st["nick"] is None:
                st["nick"] = line
                broadcast(f"* {line} joined")
            elif line == "/quit":
                drop(s)
            else:
                broadcast(f"{st['nick']}: {line}")

        while True:
            for key, mask in sel.select():
                s = key.fileobj
                if s is srv:
                    try:
                        c, _ = srv.accept()
                    except BlockingIOError:
                        continue
                    c.setblocking(False)
                    state[c] = {"nick": None, "inb": bytearray(), "outb": bytearray()}
                    sel.register(c, selectors.EVENT_READ)
                    continue
                if s not in state:
                    continue
                if mask & selectors.EVENT_READ:
                    try:
                        data = s.recv(65536)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        drop(s)
                        continue
                    if data == b"":
                        st = state[s]
                        if st["inb"]:
                            on_line(
                                s, bytes(st["inb"]).removesuffix(b"\r").decode("utf-8", "replace")
                            )
                        drop(s)
                        continue
                    if data:
                        st = state[s]
                        st["inb"] += data
                        while s in state:
                            i = st["inb"].find(b"\n")
                            if i < 0:
                                break
                            raw = bytes(st["inb"][:i]).removesuffix(b"\r")
                            del st["inb"][: i + 1]
                            on_line(s, raw.decode("utf-8", "replace"))
                if s in state and mask & selectors.EVENT_WRITE:
                    st = state[s]
                    try:
                        n = s.send(st["outb"])
                        del st["outb"][:n]
                        update(s)
                    except BlockingIOError:
                        pass
                    except OSError:
                        drop(s)

    return fair_chat_server


def e3_c4_threads_drop_lines():
    """The reviewer's e3_c4_threads_drop_lines.py."""
    import queue
    import socket
    import threading

    MAX_LINES = 1000  # at most this many lines wait for one client

    def read_lines(sock):
        buf = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if buf:
            yield buf.removesuffix(b"\r").decode("utf-8", "replace")

    def fair_chat_server(port):
        clients = {}  # conn -> (nick, queue)
        lock = threading.Lock()

        def kick(conn):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def broadcast(text):
            data = (text + "\n").encode("utf-8")
            with lock:
                targets = list(clients.items())
            for conn, (nick, q) in targets:  # noqa: B007 - as the reviewer wrote it
                try:
                    q.put_nowait(data)
                except queue.Full:
                    pass  # too slow: this line is dropped for it

        def writer(conn, q):
            try:
                while True:
                    data = q.get()
                    if data is None:
                        return
                    conn.sendall(data)
            except OSError:
                kick(conn)

        def handle(conn):
            nick = None
            q = queue.Queue(maxsize=MAX_LINES)
            threading.Thread(target=writer, args=(conn, q), daemon=True).start()
            try:
                for line in read_lines(conn):
                    if nick is None:
                        nick = line
                        print("joined:", nick)
                        with lock:
                            clients[conn] = (nick, q)
                        broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        broadcast(f"{nick}: {line}")
            except OSError:
                pass
            finally:
                with lock:
                    gone = clients.pop(conn, None)
                if gone is not None:
                    print("left:", nick)
                    broadcast(f"* {nick} left")
                try:
                    q.put_nowait(None)
                except queue.Full:
                    pass
                kick(conn)
                conn.close()

        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", port))
        srv.listen(128)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    return fair_chat_server


def e3_c5_asyncio_drain_timeout():
    """The reviewer's e3_c5_asyncio_drain_timeout.py."""
    import asyncio

    LIMIT = 1 << 20  # 1 MiB waiting for one client  # noqa: F841 - as the reviewer wrote it

    async def fair_chat_server(port):
        writers = {}  # writer -> nick

        async def broadcast(text):
            data = (text + "\n").encode()
            for w in list(writers):
                if w.is_closing():
                    continue
                w.write(data)
                try:
                    await asyncio.wait_for(w.drain(), 0.5)
                except (ConnectionError, asyncio.TimeoutError):  # noqa: UP041 - as the reviewer wrote it
                    w.transport.abort()

        async def handle(reader, writer):
            nick = None
            try:
                while True:
                    raw = await reader.readline()
                    if not raw:
                        break
                    line = raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", "replace")
                    if nick is None:
                        nick = line
                        print("joined", nick)
                        writers[writer] = nick
                        await broadcast(f"* {nick} joined")
                    elif line == "/quit":
                        break
                    else:
                        await broadcast(f"{nick}: {line}")
            except (ConnectionError, OSError):
                pass
            finally:
                if writers.pop(writer, None) is not None:
                    print("left", nick)
                    await broadcast(f"* {nick} left")
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    return fair_chat_server


@pytest.mark.parametrize(
    "answer, hint",
    [
        (e1_w04_only_at_eof, "Write a generator"),
        (e1_w07_extra_empty_at_eof, "Yield the rest only if it is not empty"),
        (e1_w08_strip_whitespace, "Remove only the line end"),
        (e1_w10_text_makefile_universal, "Remove only the line end"),
        (e1_w11_short_recv_means_eof, "Only b'' means the peer has closed"),
        (e1_w12_replace_all_cr, "Remove only the line end"),
        (e1_w14_one_line_per_recv, "yield every complete line in the buffer"),
        (e1_w15_rstrip_cr_all, "Remove only the line end"),
        (e1_w19_one_line_per_recv_keep_empty, "yield every complete line in the buffer"),
        (e1_w20_keeps_newline, "Yield each line without its line end"),
    ],
)
def test_review_read_lines_mistakes_get_their_hint(answer, hint):
    fails_with(nb09.check_read_lines(answer()), hint)


@pytest.mark.parametrize(
    "answer",
    [
        e1_c1_buffer_split,
        e1_c2_makefile,
        e1_c3_incremental_decoder,
        e1_c4_bytearray_find,
        e1_c5_partition_recv1k,
        e1_c6_makefile_readline_loop,
        e1_c7_recv_one_byte,
    ],
)
def test_review_read_lines_correct_answers_pass(answer):
    verdict = nb09.check_read_lines(answer())
    assert verdict.passed, verdict.text()


@pytest.mark.parametrize(
    "answer, hint",
    [
        (e2_w18_no_newline, "Bytes of your line arrived, but no"),
        (e2_w20_asyncio_reset_uncaught, "`await reader.readline()` raise ConnectionResetError"),
        (e2_w21_asyncio_drain_live_dict, "`await writer.drain()`"),
        (e2_w24_left_for_nameless, "never joined"),
        (e2_w26_double_left, "One departure, one '* NICK left'"),
        (e2_probe_msg_twice, "Each member must get each line once"),
        (e2_probe_left_twice, "One departure, one '* NICK left'"),
    ],
)
def test_review_chat_server_mistakes_get_their_hint(answer, hint):
    fails_with(nb09.check_chat_server(answer()), hint)


def test_review_others_send_error_drops_sender_is_told_to_catch_per_member():
    """e2_w22: an error sending to another member ends the sender's loop; depending on
    timing the check sees a newcomer dropped, a thread that crashed on a broken pipe, or on
    a socket closed meanwhile: each hint says to catch OSError per member."""
    verdict = nb09.check_chat_server(e2_w22_others_send_error_drops_sender())
    assert not verdict.passed, verdict.text()
    assert any(
        part in verdict.hint
        for part in (
            "Catch OSError around each send to another member",
            "separately, around each sendall() to each member",
        )
    ), verdict.text()


@pytest.mark.parametrize(
    "answer",
    [
        e2_c1_threads_lock,
        e2_c2_threads_queue_broadcaster,
        e2_c3_selectors,
        e2_c4_asyncio,
        e2_c5_send_under_lock,
        e2_c6_socketserver,
        e2_c7_socketserver_backlog128,
    ],
)
def test_review_chat_server_correct_answers_pass(answer):
    verdict = nb09.check_chat_server(answer())
    assert verdict.passed, verdict.text()


@pytest.mark.parametrize(
    "answer",
    [
        e3_c1_threads_bounded_queue_kick,
        e3_c2_asyncio_abort,
        e3_c3_selectors_bounded,
        e3_c4_threads_drop_lines,
        e3_c5_asyncio_drain_timeout,
    ],
)
def test_review_fair_chat_server_correct_answers_pass(answer):
    verdict = nb09.check_fair_chat_server(answer())
    assert verdict.passed, verdict.text()


# --- walkthrough 4: a server without any try, and one that uses read_lines unknown ---------


def e2_walk_no_try(port, bare_next=True):
    """The walkthrough's attempt: no try around recv() or sendall(), next(lines) bare."""
    clients = {}

    def broadcast(text):
        for c in clients:
            c.sendall((text + "\n").encode())

    def handle(conn):
        lines = sol09.read_lines(conn)
        nick = next(lines) if bare_next else next(lines, None)
        if nick is None:
            conn.close()
            return
        clients[conn] = nick
        broadcast(f"* {nick} joined")
        for line in lines:
            if line == "/quit":
                break
            broadcast(f"{nick}: {line}")
        del clients[conn]
        broadcast(f"* {nick} left")
        conn.close()

    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()


def e2_walk_no_try_nameless_ok(port):
    return e2_walk_no_try(port, bare_next=False)


@pytest.mark.parametrize(
    "answer, step, hint",
    [
        (e2_walk_no_try, "closes before it sends a nickname", "next(lines, None)"),
        (e2_walk_no_try_nameless_ok, "carol vanishes", "Catch OSError around the client's"),
    ],
)
def test_a_server_without_try_fails_at_the_same_step_every_time(answer, step, hint):
    """The conversations' clients leave one at a time at the end: the server's '* NICK
    left' never meets a socket the check has just closed, so the verdict (before: '1 of
    4' or '2 of 4', by chance) names the step that really broke the server."""
    for _ in range(3):
        verdict = nb09.check_chat_server(answer)
        fails_with(verdict, hint)
        assert [o.status for o in verdict.outcomes] == ["pass", "pass", "fail", "skip"]
        assert step in verdict.failure.sent, verdict.text()


def test_read_lines_not_defined_is_told_to_run_its_cell():
    source = """
def chat_server(port):
    def handle(conn):
        for line in read_lines(conn):
            conn.sendall(line.encode())
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""
    namespace = {"socket": socket, "threading": threading}  # a kernel without read_lines
    exec(source, namespace)
    verdict = nb09.check_chat_server(namespace["chat_server"])
    fails_with(verdict, "read_lines is your function of Exercise 1. Run the cell that defines")
    assert "NameError: name 'read_lines' is not defined" in verdict.text()
