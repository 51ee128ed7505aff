"""Notebook 05's selectors exercise: the check passes correct servers in several styles
and catches the mistakes of PITFALLS.md row 16 and its neighbours, each with its hint.

Each wrong server below is one a learner writes: READ|WRITE for every connection (the
busy loop), a blocking sendall() inside the loop, sendall() on a non-blocking socket,
send() whose return value is ignored, close() without unregister(), b'' ignored or
compared with '', the outbox thrown away at b'', a thread per client, one client at a time.
"""

import select
import selectors
import socket

import pytest

from helpers.exercises import nb05
from helpers.exercises.solutions import nb05 as sol05
from helpers.servers import selector_echo_server  # the course's: an outbox limit of 256 KiB


def stub(port):
    raise NotImplementedError


IDLE = "echoes a message, then does not spin while its client is idle"
SLOW_READER = "echoes clients B and C while client A does not read its echo"


def fails_with(verdict, hint_part: str, title: str | None = None) -> None:
    assert not verdict.passed, verdict.text()
    assert hint_part in verdict.hint, verdict.text()
    if title is not None:
        failed = [o.title for o in verdict.outcomes if o.status == "fail"]
        assert failed == [title], verdict.text()


def _listener(port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.setblocking(False)
    return listener


# --- correct servers in other styles ------------------------------------------------------


def select_select_server(port):
    """select.select with lists and a dict of outboxes; no timeout at all."""
    listener = _listener(port)
    outboxes = {}  # conn -> bytearray
    finished = set()
    while True:
        readers = [listener] + [c for c in outboxes if c not in finished]
        writers = [c for c, box in outboxes.items() if box]
        readable, writable, _ = select.select(readers, writers, [])
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                outboxes[conn] = bytearray()
                continue
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
                outboxes[sock].clear()
            if data:
                outboxes[sock] += data
            else:
                finished.add(sock)
        for sock in writable:
            if sock in outboxes:
                try:
                    del outboxes[sock][: sock.send(outboxes[sock])]
                except BlockingIOError:
                    pass
        for sock in [c for c in finished if not outboxes[c]]:
            finished.discard(sock)
            del outboxes[sock]
            sock.close()


def callback_selector_server(port):
    """The selectors docs' style: each key's data is the function to call."""
    selector = selectors.DefaultSelector()
    listener = _listener(port)
    state = {}  # conn -> [outbox, finished]

    def update(conn):
        outbox, done = state[conn]
        if done and not outbox:
            selector.unregister(conn)
            del state[conn]
            conn.close()
            return
        events = (0 if done else selectors.EVENT_READ) | (selectors.EVENT_WRITE if outbox else 0)
        selector.modify(conn, events, service)

    def service(conn, mask):
        try:
            if mask & selectors.EVENT_READ:
                data = conn.recv(65536)
                if data:
                    state[conn][0] += data
                else:
                    state[conn][1] = True
            if mask & selectors.EVENT_WRITE:
                del state[conn][0][: conn.send(state[conn][0])]
        except BlockingIOError:
            return
        update(conn)

    def accept(sock, mask):
        conn, _ = sock.accept()
        conn.setblocking(False)
        state[conn] = [bytearray(), False]
        selector.register(conn, selectors.EVENT_READ, service)

    selector.register(listener, selectors.EVENT_READ, accept)
    while True:
        for key, mask in selector.select(timeout=0.5):
            key.data(key.fileobj, mask)


def dict_state_server(port):
    """The reviewers' correct style (see _dict_state_server below), select() timeout 1 s."""
    _dict_state_server(port)


def dict_state_no_timeout(port):
    """The same with select() and no timeout: it waits until a socket is ready."""
    _dict_state_server(port, timeout=None)


def read_or_write_exclusive(port):
    """Reads only while the outbox is empty, then WRITE only until it is: bounded by one recv."""
    sel = selectors.DefaultSelector()
    ls = _listener(port)
    sel.register(ls, selectors.EVENT_READ, "listen")
    while True:
        for key, mask in sel.select(timeout=2):
            if key.data == "listen":
                conn, _ = ls.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, [bytearray()])
                continue
            conn, box = key.fileobj, key.data
            if mask & selectors.EVENT_READ:
                chunk = conn.recv(8192)
                if chunk:
                    box[0] += chunk
                    sel.modify(conn, selectors.EVENT_WRITE, box)
                else:
                    sel.unregister(conn)
                    conn.close()
            elif mask & selectors.EVENT_WRITE:
                del box[0][: conn.send(box[0])]
                if not box[0]:
                    sel.modify(conn, selectors.EVENT_READ, box)


def send_at_once_then_register(port):
    """Tries send() right after recv() and registers WRITE only for what is left."""
    sel = selectors.DefaultSelector()
    ls = _listener(port)
    sel.register(ls, selectors.EVENT_READ)
    state = {}  # conn -> [outbox, closing]

    def update(conn):
        outbox, closing = state[conn]
        if closing and not outbox:
            sel.unregister(conn)
            del state[conn]
            conn.close()
            return
        events = (0 if closing else selectors.EVENT_READ) | (selectors.EVENT_WRITE if outbox else 0)
        sel.modify(conn, events)

    while True:
        for key, mask in sel.select(0.2):
            if key.fileobj is ls:
                conn, _ = ls.accept()
                conn.setblocking(False)
                state[conn] = [bytearray(), False]
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            outbox = state[conn][0]
            try:
                if mask & selectors.EVENT_READ:
                    try:
                        data = conn.recv(32768)
                    except ConnectionResetError:
                        data = b""
                    if data:
                        outbox += data
                        del outbox[: conn.send(outbox)]  # at once; keep the rest
                    else:
                        state[conn][1] = True
                if mask & selectors.EVENT_WRITE and outbox:
                    del outbox[: conn.send(outbox)]
            except BlockingIOError:
                pass
            update(conn)


def bounded_outbox(port):
    """Stops reading while more than 1 MiB waits in the outbox."""

    def wanted(st):
        full = st["eof"] or len(st["out"]) > 1 << 20
        return (0 if full else selectors.EVENT_READ) | (selectors.EVENT_WRITE if st["out"] else 0)

    _dict_state_server(port, wanted=wanted)


@pytest.mark.parametrize(
    "server",
    [
        sol05.selector_server,
        select_select_server,
        callback_selector_server,
        selector_echo_server,
        dict_state_server,
        dict_state_no_timeout,
        read_or_write_exclusive,
        send_at_once_then_register,
        bounded_outbox,
    ],
)
def test_selector_server_correct_styles_pass(server):
    verdict = nb05.check_selector_server(server)
    assert verdict.passed, verdict.text()


def test_selector_server_stub_is_not_done():
    verdict = nb05.check_selector_server(stub)
    assert verdict.not_done and "not done yet" in verdict.text()


# --- wrong servers ---------------------------------------------------------------------------


def _selector_loop(port, on_ready, events=selectors.EVENT_READ, timeout=1.0, blocking=False):
    """A selectors loop: each connection registered for ``events`` with a bytearray as its
    data (and ``blocking`` or not), handled by ``on_ready(selector, key, mask)``."""
    selector = selectors.DefaultSelector()
    listener = _listener(port)
    selector.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, mask in selector.select(timeout=timeout):
            if key.data is None:
                conn, _ = listener.accept()
                conn.setblocking(blocking)
                selector.register(conn, events, bytearray())
            else:
                on_ready(selector, key, mask)


def _echo_with(send, **loop):
    """A loop that echoes each chunk with ``send(conn, data)``; closes on b''."""

    def on_ready(selector, key, mask):
        conn = key.fileobj
        data = conn.recv(65536)
        if not data:
            selector.unregister(conn)
            conn.close()
        else:
            send(conn, data)

    return lambda port: _selector_loop(port, on_ready, **loop)


def _outbox_for_all(selector, key, mask):
    conn, outbox = key.fileobj, key.data
    try:
        if mask & selectors.EVENT_READ:
            data = conn.recv(65536)
            if not data:
                selector.unregister(conn)
                conn.close()
                return
            outbox += data
        if mask & selectors.EVENT_WRITE and outbox:
            del outbox[: conn.send(outbox)]
    except BlockingIOError:
        pass


def read_write_for_all(port):
    """An outbox, but READ|WRITE registered for every connection: select() returns at once."""
    _selector_loop(port, _outbox_for_all, events=selectors.EVENT_READ | selectors.EVENT_WRITE)


# the right registrations, but select(timeout=0): it never waits
polls_with_timeout_zero = _echo_with(lambda conn, data: conn.send(data), timeout=0)
# connections left blocking, echoed with sendall() inside the loop: it waits for one client
blocking_sendall = _echo_with(lambda conn, data: conn.sendall(data), blocking=True)


def _sendall_ignoring_blocking(conn, data):
    try:
        conn.sendall(data)
    except BlockingIOError:
        pass  # what did not fit is lost


nonblocking_sendall = _echo_with(lambda conn, data: conn.sendall(data))
nonblocking_sendall_swallowed = _echo_with(_sendall_ignoring_blocking)
send_ignoring_its_result = _echo_with(lambda conn, data: conn.send(data))


def close_without_unregister(port):
    def on_ready(selector, key, mask):
        conn = key.fileobj
        data = conn.recv(65536)
        if not data:
            conn.close()  # still registered: its number comes back with the next client
        else:
            conn.send(data)

    _selector_loop(port, on_ready)


def ignores_empty_read(port):
    def on_ready(selector, key, mask):
        data = key.fileobj.recv(65536)
        if data:
            key.fileobj.send(data)

    _selector_loop(port, on_ready)


def compares_with_str(port):
    def on_ready(selector, key, mask):
        data = key.fileobj.recv(65536)
        if data == "":  # b'' != '': never true
            selector.unregister(key.fileobj)
            key.fileobj.close()
        else:
            key.fileobj.send(data)

    _selector_loop(port, on_ready)


def drops_outbox_at_eof(port):
    """An outbox, WRITE only when needed, but b'' closes at once, echo or not."""

    def on_ready(selector, key, mask):
        _outbox_for_all(selector, key, mask)
        if key.fileobj.fileno() == -1:
            return  # closed at b'', with what its outbox still held
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if key.data else 0)
        if events != key.events:
            selector.modify(key.fileobj, events, key.data)

    _selector_loop(port, on_ready)


# Exercise 1's answer, right there and wrong here: a thread per client
thread_per_client = sol05.threaded_server


def one_client_at_a_time(port):
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def _dict_state_server(
    port,
    accepted=None,
    trim=None,
    at_eof=None,
    close=True,
    listener=None,
    timeout=1.0,
    wanted=None,
):
    """The reviewers' style: a dict {"out": bytearray, "eof": bool} per connection.
    ``accepted(conn)`` after accept() (default: setblocking(False)); ``trim(st, n)`` after
    send() (default: del st["out"][:n]); ``at_eof(sel, conn, st)`` when recv() gave b''
    (default: mark it finished); ``close``: close() after unregister() (else shutdown());
    ``wanted(st)``: the events to register (default: READ until b'', WRITE while the outbox
    holds data)."""
    sel = selectors.DefaultSelector()
    lsock = listener(port) if listener else _listener(port)
    sel.register(lsock, selectors.EVENT_READ, None)
    while True:
        for key, mask in sel.select(timeout=timeout):
            if key.data is None:
                conn, _ = lsock.accept()
                (accepted or (lambda c: c.setblocking(False)))(conn)
                sel.register(conn, selectors.EVENT_READ, {"out": bytearray(), "eof": False})
                continue
            conn, st = key.fileobj, key.data
            if mask & selectors.EVENT_READ:
                data = conn.recv(65536)
                if data:
                    st["out"] += data
                elif at_eof is not None:
                    at_eof(sel, conn, st)
                    continue
                else:
                    st["eof"] = True
            if mask & selectors.EVENT_WRITE and st["out"]:
                n = conn.send(st["out"])
                if trim is None:
                    del st["out"][:n]
                else:
                    trim(st, n)
            if st["eof"] and not st["out"]:
                sel.unregister(conn)
                if close:
                    conn.close()
                else:
                    conn.shutdown(socket.SHUT_WR)  # never close()d: its fd stays open
                continue
            want = (wanted or _read_until_eof)(st)
            if want != key.events:
                sel.modify(conn, want, st)


def _read_until_eof(st):
    return (0 if st["eof"] else selectors.EVENT_READ) | (selectors.EVENT_WRITE if st["out"] else 0)


def connections_left_blocking(port):
    _dict_state_server(port, accepted=lambda conn: None)  # no setblocking(False)


def listener_left_blocking(port):
    def blocking_listener(port):
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen()  # never setblocking(False)
        return listener

    _dict_state_server(port, listener=blocking_listener)


def never_closes(port):
    _dict_state_server(port, close=False)


def outbox_trimmed_into_a_local(port):
    def trim(st, n):
        out = st["out"]
        out = out[n:]  # noqa: F841 - the learner's mistake: a new object, a local name

    _dict_state_server(port, trim=trim)


def blocking_sendall_at_eof(port):
    def at_eof(sel, conn, st):
        sel.unregister(conn)
        conn.setblocking(True)
        conn.sendall(st["out"])  # waits until the client has read it all
        conn.close()

    _dict_state_server(port, at_eof=at_eof)


def keeps_reading_after_eof(port):
    """Finishes at b'' but keeps EVENT_READ while the outbox drains."""
    _dict_state_server(
        port,
        wanted=lambda st: selectors.EVENT_READ | (selectors.EVENT_WRITE if st["out"] else 0),
    )


def send_result_ignored_outbox_cleared(port):
    sel = selectors.DefaultSelector()
    ls = _listener(port)
    sel.register(ls, selectors.EVENT_READ)
    while True:
        for key, mask in sel.select(timeout=1):
            if key.fileobj is ls:
                c, _ = ls.accept()
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ, bytearray())
                continue
            c, box = key.fileobj, key.data
            if mask & selectors.EVENT_READ:
                d = c.recv(4096)
                if not d:
                    sel.unregister(c)
                    c.close()
                    continue
                box += d
                sel.modify(c, selectors.EVENT_READ | selectors.EVENT_WRITE, box)
            if mask & selectors.EVENT_WRITE and box:
                c.send(box)  # return value ignored
                box.clear()
                sel.modify(c, selectors.EVENT_READ, box)


def accept_with_a_timeout_every_pass(port):
    sel = selectors.DefaultSelector()
    ls = socket.create_server(("127.0.0.1", port))
    ls.settimeout(0.05)
    out = {}
    while True:
        try:
            c, _ = ls.accept()
            c.setblocking(False)
            out[c] = bytearray()
            sel.register(c, selectors.EVENT_READ)
        except TimeoutError:
            pass
        for key, mask in sel.select(timeout=0.05):
            c = key.fileobj
            if mask & selectors.EVENT_READ:
                d = c.recv(4096)
                if not d:
                    sel.unregister(c)
                    c.close()
                    del out[c]
                    continue
                out[c] += d
                sel.modify(c, selectors.EVENT_READ | selectors.EVENT_WRITE)
            if mask & selectors.EVENT_WRITE:
                del out[c][: c.send(out[c])]
                if not out[c]:
                    sel.modify(c, selectors.EVENT_READ)


def short_read_means_done(port):
    """'A recv() shorter than asked means the client has finished.'"""

    def on_ready(selector, key, mask):
        conn = key.fileobj
        data = conn.recv(4096)
        if data:
            conn.send(data)
        if len(data) < 4096:
            selector.unregister(conn)
            conn.close()

    _selector_loop(port, on_ready)


ONE_THREAD = "serves both clients from one thread"
NON_BLOCKING = "keeps its listening socket and connections non-blocking"
BIG = "echoes all of 16 MiB, then closes"
TWO = "echoes two messages on one connection, closes after b''"

WRONG = {
    "read_write_for_all": (read_write_for_all, "nearly always writable", IDLE),
    "polls_with_timeout_zero": (polls_with_timeout_zero, "timeout that is not 0", IDLE),
    # blocking connections, echoed with sendall(): the blocking socket is the cause
    "blocking_sendall": (blocking_sendall, "conn.setblocking(False)", NON_BLOCKING),
    "connections_left_blocking": (connections_left_blocking, "setblocking(False)", NON_BLOCKING),
    "listener_left_blocking": (listener_left_blocking, "listener.setblocking(False)", NON_BLOCKING),
    "accept_with_a_timeout_every_pass": (
        accept_with_a_timeout_every_pass,
        "listening socket has a timeout",
        NON_BLOCKING,
    ),
    "never_closes": (never_closes, "call conn.close()", TWO),
    "outbox_trimmed_into_a_local": (outbox_trimmed_into_a_local, "`del outbox[:sent]`", IDLE),
    "blocking_sendall_at_eof": (blocking_sendall_at_eof, "At b'' your server waited", SLOW_READER),
    "keeps_reading_after_eof": (keeps_reading_after_eof, "stop reading that connection", BIG),
    "short_read_means_done": (short_read_means_done, "only recv() returning b''", TWO),
    # caught by the 16 MiB (a crash: BlockingIOError)
    "nonblocking_sendall": (nonblocking_sendall, "BlockingIOError", BIG),
    "sendall_swallowed": (nonblocking_sendall_swallowed, "swallow the BlockingIOError", BIG),
    "send_ignoring_its_result": (send_ignoring_its_result, "send() raised BlockingIOError", BIG),
    "send_result_ignored_outbox_cleared": (
        send_result_ignored_outbox_cleared,
        "never clear() the outbox",
        BIG,
    ),
    "close_without_unregister": (close_without_unregister, "unregister(conn) first", None),
    "ignores_empty_read": (ignores_empty_read, "stop reading that connection", None),
    "compares_with_str": (compares_with_str, "(b'' is not '')", None),
    "drops_outbox_at_eof": (drops_outbox_at_eof, "send the rest of its outbox", BIG),
    "thread_per_client": (thread_per_client, "one-thread design", ONE_THREAD),
    "one_client_at_a_time": (
        one_client_at_a_time,
        "One loop serves everyone",
        "echoes client B while client A stays connected",
    ),
}


@pytest.mark.parametrize("wrong, hint, title", WRONG.values(), ids=WRONG.keys())
def test_selector_server_catches(wrong, hint, title):
    fails_with(nb05.check_selector_server(wrong), hint, title)


def test_busy_loop_is_caught_without_thread_clocks_too(monkeypatch):
    """Where threads have no CPU clock of their own (macOS, Windows), the count of select()
    wake-ups alone decides."""
    monkeypatch.delattr(nb05.time, "pthread_getcpuclockid")
    fails_with(nb05.check_selector_server(read_write_for_all), "nearly always writable", IDLE)
    # the reference, idle, uses far less than the threshold by that clock too
    verdict = nb05.check_selector_server(sol05.selector_server)
    assert verdict.passed, verdict.text()
