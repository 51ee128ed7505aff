"""The findings of the 210-attempt measurement (issue 10), each written as learner code.

Correct code in another style must pass; wrong code must fail with the hint that names
the real cause; a check never crashes, whatever the learner's function returns. Real
sockets on 127.0.0.1, no mocks; every wait in the checks is bounded.
"""

import asyncio
import contextlib
import itertools
import os
import re
import socket
import socketserver
import struct
import subprocess
import threading
import time

import pytest

from helpers.exercises import nb01, nb02, nb03, nb04, nb05, nb06, nb07
from helpers.exercises.solutions import nb03 as sol03
from helpers.exercises.solutions import nb04 as sol04
from helpers.exercises.solutions import nb05 as sol05
from helpers.exercises.solutions import nb06 as sol06
from helpers.exercises.solutions import nb07 as sol07


def passes(verdict):
    assert verdict.passed, str(verdict)
    assert "Traceback" not in str(verdict)


def fails_with(verdict, *hint_words, what=()):
    text = str(verdict)
    assert not verdict.passed, text
    assert "✗" in text and "hint: " in text, text
    assert "the check could not go on" not in text, text
    for word in hint_words:
        assert word in verdict.hint, text
    for word in what:
        assert word in verdict.failure.what, text


# --- correct code rejected -----------------------------------------------------------------


def echo_server_backlog_5(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)  # the tutorial's backlog
    while True:
        conn, addr = s.accept()
        conn.settimeout(10)
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except (ConnectionError, TimeoutError):
                pass


def command_server_backlog_5(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    while True:
        conn, addr = s.accept()
        conn.settimeout(10)
        with conn:
            try:
                sol04.serve_lines(conn)
            except (ConnectionError, TimeoutError):
                pass


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.settimeout(10)
        try:
            while data := self.request.recv(1024):
                self.request.sendall(data)
        except (ConnectionError, TimeoutError):
            pass


def echo_server_socketserver(port):
    with socketserver.TCPServer(("127.0.0.1", port), _EchoHandler) as server:  # backlog 5
        server.serve_forever()


@pytest.mark.parametrize("server", [echo_server_backlog_5, echo_server_socketserver])
def test_nb04_echo_server_with_backlog_5_passes(server):
    passes(nb04.check_echo_server(server))


def test_nb04_command_server_with_backlog_5_passes():
    passes(nb04.check_command_server(command_server_backlog_5))


def recv_exactly_waitall(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data), socket.MSG_WAITALL)
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def test_nb03_recv_exactly_with_msg_waitall_passes():
    passes(nb03.check_recv_exactly(recv_exactly_waitall))


def test_nb03_recv_message_with_msg_waitall_passes():
    def recv_message(sock):
        (length,) = struct.unpack("!I", recv_exactly_waitall(sock, 4))
        return recv_exactly_waitall(sock, length).decode()

    passes(nb03.check_recv_message(recv_message))


def test_nb03_stalled_verdict_says_how_many_bytes_were_sent():
    def waits_for_six(sock, n):  # asks for one byte more than it should, all at once
        return sock.recv(n + 1, socket.MSG_WAITALL)

    verdict = nb03.check_recv_exactly(waits_for_six)
    text = str(verdict)
    assert not verdict.passed
    assert "all 5 bytes were sent" in text or "though 5 of 5" in text or "5 bytes" in text, text
    assert "1 of 5" not in text


def hello_with_newline(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr[0]}\n".encode())
    c.close()
    s.close()


def test_nb01_hello_server_with_a_newline_passes():
    passes(nb01.check_hello_server(hello_with_newline))


# --- the check never crashes ----------------------------------------------------------------


def read_all_forgets_return(sock, timeout):
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    b"".join(chunks)  # no return


def test_nb07_read_all_returning_none_gets_a_verdict():
    fails_with(nb07.check_read_all(read_all_forgets_return), "return", what=["None"])


def fetch_all_with_a_none(port, requests):
    replies = sol05.fetch_all(port, requests)
    if replies:
        replies[0] = None
    return replies


def test_nb05_fetch_all_with_a_none_entry_gets_a_verdict():
    fails_with(nb05.check_fetch_all(fetch_all_with_a_none), what=["None"])


def make_server_socket_closed(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        return s  # closed by the with block


def test_nb02_make_server_socket_returning_a_closed_socket_gets_a_verdict():
    fails_with(nb02.check_make_server_socket(make_server_socket_closed), "with", what=["closed"])


def fetch_spins_on_eof(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # an AF_UNIX socket around too
    received = b""
    while True:
        chunk = s.recv(1024)
        if chunk == "":
            break
        received += chunk
    other.close()
    return received.decode()


def test_nb01_fetch_that_spins_on_eof_gets_a_verdict():
    fails_with(nb01.check_fetch(fetch_spins_on_eof), "b''")


async def fetch_async(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = await reader.read()
    writer.close()
    return data.decode()


def test_nb01_async_fetch_gets_a_coroutine_verdict():
    fails_with(nb01.check_fetch(fetch_async), "async def")


async def fetch_all_async(port, requests):
    return []


def test_nb05_async_fetch_all_gets_a_coroutine_verdict():
    fails_with(nb05.check_fetch_all(fetch_all_async), "async def")


async def port_is_open_async(port):
    return True


def test_nb02_async_port_is_open_gets_a_coroutine_verdict():
    fails_with(nb02.check_port_is_open(port_is_open_async), "async def")


def test_every_check_gives_a_verdict_when_the_function_returns_odd_things():
    odd = [None, 42, [None], "text", b"bytes"]
    checks = [
        (nb02.check_port_is_open, 1),
        (nb02.check_make_server_socket, 1),
        (nb03.check_recv_exactly, 2),
        (nb03.check_encode_message, 1),
        (nb03.check_recv_message, 1),
        (nb04.check_handle_command, 1),
        (nb05.check_fetch_all, 2),
        (nb06.check_request, 3),
        (nb06.check_analyse, 2),
        (nb07.check_read_all, 2),
        (nb07.check_ask, 2),
        (nb01.check_fetch, 1),
    ]
    for check, _arity in checks:
        for value in odd:

            def learner(*args, value=value):
                return value

            verdict = check(learner)
            text = str(verdict)
            assert not verdict.passed or value == b"bytes", (check.__name__, value, text)
            assert "the check could not go on" not in text, (check.__name__, value, text)


# --- wrong code accepted ---------------------------------------------------------------------


def command_server_answers_at_end(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            try:
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                for line in data.split(b"\n")[:-1]:
                    try:
                        reply = sol04.handle_command(line.rstrip(b"\r").decode())
                    except UnicodeDecodeError:
                        reply = "ERR not UTF-8"
                    conn.sendall(reply.encode() + b"\n")
                    if reply == "BYE":
                        break
            except ConnectionError:
                pass


def command_server_makefile_no_flush(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn, conn.makefile("rwb") as f:
            try:
                for line in f:
                    try:
                        reply = sol04.handle_command(line.rstrip(b"\r\n").decode())
                    except UnicodeDecodeError:
                        reply = "ERR not UTF-8"
                    f.write(reply.encode() + b"\n")  # no flush: stays in the buffer
                    if reply == "BYE":
                        break
                f.flush()
            except ConnectionError:
                pass


def command_server_makefile_never_flushed(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        f = conn.makefile("rwb")  # never flushed, never closed: conn.close() cannot end it
        try:
            for line in f:
                reply = sol04.handle_command(line.rstrip(b"\r\n").decode())
                f.write(reply.encode() + b"\n")
                if reply == "BYE":
                    break
        except (ConnectionError, UnicodeDecodeError):
            pass
        conn.close()


def test_nb04_command_server_never_flushing_its_makefile_is_told_to_flush():
    """Its replies never leave the file's buffer (the walkthrough's answer): the verdict
    says nothing came while the connection stayed open, and names flush()."""
    verdict = nb04.check_command_server(command_server_makefile_never_flushed)
    fails_with(verdict, "Nothing came back", "flush()")


@pytest.mark.parametrize(
    "server", [command_server_answers_at_end, command_server_makefile_no_flush]
)
def test_nb04_command_server_must_answer_each_line_at_once(server):
    fails_with(nb04.check_command_server(server), "as soon as", what=["PING"])


def _serve_lines_with(conn, decode, at_eof_reply=False):
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = conn.recv(4096)
            if not chunk:
                if at_eof_reply and buffer:
                    conn.sendall(sol04.handle_command(decode(buffer)).encode() + b"\n")
                return
            buffer += chunk
        line, _, buffer = buffer.partition(b"\n")
        try:
            reply = sol04.handle_command(decode(line))
        except UnicodeDecodeError:
            reply = "ERR not UTF-8"
        conn.sendall(reply.encode() + b"\n")
        if reply == "BYE":
            return


def _line_server(decode, at_eof_reply=False):
    def command_server(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        s.listen()
        while True:
            conn, addr = s.accept()
            with conn:
                try:
                    _serve_lines_with(conn, decode, at_eof_reply)
                except ConnectionError:
                    pass

    return command_server


def test_nb04_command_server_replying_to_an_incomplete_line_fails():
    server = _line_server(lambda b: b.rstrip(b"\r").decode(), at_eof_reply=True)
    fails_with(nb04.check_command_server(server), "incomplete")


def test_nb04_a_reply_to_the_incomplete_line_gets_one_verdict_however_it_arrives():
    """The reply to b'PIN' may share a recv() with b'PONG\\n' or come in one of its own
    (a race): the verdict is the same text either way (once it differed, 3 runs to 1)."""
    verdicts = set()
    for _ in range(4):
        server = _line_server(lambda b: b.rstrip(b"\r").decode(), at_eof_reply=True)
        verdict = nb04.check_command_server(server)
        fails_with(verdict, "b'PIN' had no b'\\n'", what=("after b'PONG\\n' came",))
        verdicts.add(str(verdict))
    assert len(verdicts) == 1, verdicts


def test_nb04_command_server_with_errors_replace_fails():
    server = _line_server(lambda b: b.rstrip(b"\r").decode("utf-8", errors="replace"))
    fails_with(nb04.check_command_server(server), "ERR not UTF-8")


def test_nb04_command_server_with_strip_fails():
    server = _line_server(lambda b: b.decode().strip())
    fails_with(nb04.check_command_server(server), "\\r")


def handle_command_bare_echo_crashes(line):
    words = line.split(" ")
    if words[0] == "ECHO":
        return line.split(" ", 1)[1]  # IndexError on a bare "ECHO"
    return sol04.handle_command(line)


def test_nb04_handle_command_crashing_on_bare_echo_fails():
    fails_with(nb04.check_handle_command(handle_command_bare_echo_crashes), "ERR")


def handle_command_loses_spaces(line):
    words = line.split()
    if words and words[0] == "ECHO":
        return " ".join(words[1:])
    return sol04.handle_command(line)


def test_nb04_handle_command_losing_spaces_fails():
    fails_with(nb04.check_handle_command(handle_command_loses_spaces), "text")


def echo_server_every_interface(port):
    s = socket.socket()
    s.bind(("", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except ConnectionError:
                pass


def test_nb04_echo_server_bound_to_every_interface_fails():
    fails_with(nb04.check_echo_server(echo_server_every_interface), "127.0.0.1")


def command_server_every_interface(port):
    s = socket.socket()
    s.bind(("0.0.0.0", port))
    s.listen()
    while True:
        conn, addr = s.accept()
        with conn:
            try:
                sol04.serve_lines(conn)
            except ConnectionError:
                pass


def test_nb04_command_server_bound_to_every_interface_fails():
    fails_with(nb04.check_command_server(command_server_every_interface), "127.0.0.1")


def hello_every_interface(port):
    s = socket.socket()
    s.bind(("", port))
    s.listen(5)
    c, addr = s.accept()
    c.send(f"Hello, {addr[0]}".encode())
    c.close()
    s.close()


def test_nb01_hello_server_bound_to_every_interface_fails():
    fails_with(nb01.check_hello_server(hello_every_interface), "127.0.0.1")


def fetch_two_recvs(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    with s:
        first = s.recv(1024)
        second = s.recv(1024)
    return (first + second).decode()


def test_nb01_fetch_with_exactly_two_recvs_fails():
    fails_with(nb01.check_fetch(fetch_two_recvs), "b''")


def fetch_no_timeout_create_connection(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        received = b""
        while chunk := s.recv(1024):
            received += chunk
    return received.decode()


def test_nb01_fetch_without_timeout_fails():
    fails_with(nb01.check_fetch(fetch_no_timeout_create_connection), "timeout")


async def handle_time_sleep(reader, writer):
    try:
        while data := await reader.read(65536):
            time.sleep(1.5)  # blocks the whole event loop
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def handle_sleep_after_reply(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
            time.sleep(0.8)  # "wait a moment for more": blocks every other client
    finally:
        writer.close()


async def handle_blocking_recv(reader, writer):
    # a handler ported from threads that asks another service with a plain socket: its
    # recv() blocks the loop (here the service stays silent; recv waits out 0.8 s)
    service, silent = socket.socketpair()
    service.settimeout(0.8)
    try:
        while data := await reader.read(65536):
            try:
                data += service.recv(1024)
            except TimeoutError:
                pass
            writer.write(data)
            await writer.drain()
    finally:
        service.close()
        silent.close()
        writer.close()


@pytest.mark.parametrize(
    "handle", [handle_time_sleep, handle_sleep_after_reply, handle_blocking_recv]
)
def test_nb05_handle_that_blocks_the_loop_fails(handle):
    fails_with(nb05.check_handle(handle), "event loop")


def fetch_all_asyncio_run(port, requests):
    async def one(request):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        writer.write_eof()
        data = await reader.read()
        writer.close()
        return data

    async def main():
        return list(await asyncio.gather(*(one(r) for r in requests)))

    return asyncio.run(main())


def test_nb05_fetch_all_with_asyncio_run_fails_as_in_a_notebook():
    fails_with(nb05.check_fetch_all(fetch_all_asyncio_run), "asyncio.run")


def fetch_all_late_binding(port, requests):
    replies = [None] * len(requests)

    def fetch(index, request):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            replies[index] = b"".join(chunks)

    threads = []
    for i, r in enumerate(requests):
        threads.append(threading.Thread(target=lambda: fetch(i, r)))  # noqa: B023 - late binding
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return replies


def test_nb05_fetch_all_late_binding_lambda_gets_the_right_hint():
    fails_with(nb05.check_fetch_all(fetch_all_late_binding), "lambda")


def selectors_server_blocking_sendall(port):
    import selectors

    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(True)
                sel.register(conn, selectors.EVENT_READ)
            else:
                conn = key.fileobj
                data = conn.recv(65536)
                if data:
                    conn.sendall(data)  # blocks while this client does not read
                else:
                    sel.unregister(conn)
                    conn.close()


def test_nb05_threaded_server_check_catches_a_single_threaded_server():
    fails_with(nb05.check_threaded_server(selectors_server_blocking_sendall), "thread")


def threaded_server_keeps_sockets(port):
    kept = []

    def handle(conn):
        while data := conn.recv(4096):
            conn.sendall(data)
        kept.append(conn)  # never closed

    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    while True:
        conn, addr = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def test_nb05_threaded_server_keeping_connections_open_fails():
    fails_with(nb05.check_threaded_server(threaded_server_keeps_sockets), "close")


_kept = []


def port_is_open_keeps_socket(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        return False
    _kept.append(s)  # never closed, and still referenced: no ResourceWarning
    return True


def test_nb02_port_is_open_keeping_its_socket_fails():
    try:
        fails_with(nb02.check_port_is_open(port_is_open_keeps_socket), "close")
    finally:
        for s in _kept:
            s.close()


class _Holder:
    listener = None


def graceful_server_keeps_listener(port, stop):
    listener = socket.socket()
    _Holder.listener = listener  # kept: never closed
    listener.bind(("127.0.0.1", port))
    listener.listen()
    listener.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(0.1)
        with conn:
            while not stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                conn.sendall(data)


def test_nb07_graceful_server_keeping_its_listener_fails():
    try:
        fails_with(nb07.check_graceful_server(graceful_server_keeps_listener), "lose")
    finally:
        if _Holder.listener is not None:
            _Holder.listener.close()


def graceful_server_blocking_accept(port, stop):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        while not stop.is_set():
            conn, _ = listener.accept()  # no timeout: `stop` is seen only when a client comes
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)


def test_nb07_graceful_server_hint_bounds_the_waits_not_the_connection():
    """The hint's cure must not be the bug of the old reference solution: a 0.1 s timeout
    on the connection also bounds sendall(), so a slow reader would be cut off."""
    verdict = nb07.check_graceful_server(graceful_server_blocking_accept)
    fails_with(verdict, "never looks at `stop`", "select.select", "slow client")
    assert "settimeout(0.1) on the listening socket" in verdict.hint


def request_no_colon(address, request_id, payload, timeout=0.2, retries=5):
    prefix = str(request_id).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(retries):
            sock.sendto(prefix + b":" + payload, address)
            try:
                while True:
                    data, _ = sock.recvfrom(65535)
                    if data.startswith(prefix):  # 7 matches 70 too
                        return data.split(b":", 1)[1]
            except TimeoutError:
                continue
    raise TimeoutError


def request_split_colon(address, request_id, payload, timeout=0.2, retries=5):
    prefix = f"{request_id}:".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(retries):
            sock.sendto(prefix + payload, address)
            try:
                while True:
                    data, _ = sock.recvfrom(65535)
                    if data.startswith(prefix):
                        return data.split(b":")[1]  # cuts a payload that has a colon
            except TimeoutError:
                continue
    raise TimeoutError


def request_small_buffer(address, request_id, payload, timeout=0.2, retries=5):
    prefix = f"{request_id}:".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for _ in range(retries):
            sock.sendto(prefix + payload, address)
            try:
                while True:
                    data, _ = sock.recvfrom(1024)
                    if data.startswith(prefix):
                        return data[len(prefix) :]
            except TimeoutError:
                continue
    raise TimeoutError


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (request_no_colon, "':'"),
        (request_split_colon, "colon"),
        (request_small_buffer, "65535"),
    ],
)
def test_nb06_request_catches(wrong, hint):
    fails_with(nb06.check_request(wrong), hint)


def ask_without_timeout(port, request):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_nb07_ask_without_timeout_fails():
    fails_with(nb07.check_ask(ask_without_timeout), "timeout")


def read_all_overall_deadline(sock, timeout):
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("too slow")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def test_nb07_read_all_with_one_overall_deadline_fails():
    fails_with(nb07.check_read_all(read_all_overall_deadline), "silence")


# --- misleading hints ------------------------------------------------------------------------


def recv_message_little_endian(sock):
    (length,) = struct.unpack("<I", sol03.recv_exactly(sock, 4))
    return sol03.recv_exactly(sock, length).decode()


def test_nb03_little_endian_header_gets_the_byte_order_hint():
    fails_with(nb03.check_recv_message(recv_message_little_endian), "big-endian")


def graceful_is_set_not_called(port, stop):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.1)
        while not stop.is_set:  # the method itself: always true, so the loop never runs
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue


def test_nb07_is_set_without_call_gets_the_right_hint():
    fails_with(nb07.check_graceful_server(graceful_is_set_not_called), "stop.is_set()")


def command_server_no_cr_strip(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()

    def handle(line):
        reply = sol04.handle_command(line)
        return "ERR unknown command" if reply.startswith("ERR") else reply

    while True:
        conn, addr = s.accept()
        with conn:
            buffer = b""
            try:
                while True:
                    while b"\n" not in buffer:
                        chunk = conn.recv(4096)
                        if not chunk:
                            raise EOFError
                        buffer += chunk
                    line, _, buffer = buffer.partition(b"\n")
                    try:
                        reply = handle(line.decode())  # b'\r' left in the line
                    except UnicodeDecodeError:
                        reply = "ERR not UTF-8"
                    conn.sendall(reply.encode() + b"\n")
                    if reply == "BYE":
                        break
            except (ConnectionError, EOFError):
                pass


def test_nb04_missing_cr_strip_gets_the_cr_hint():
    fails_with(nb04.check_command_server(command_server_no_cr_strip), "\\r")


async def handle_readline(reader, writer):
    try:
        while data := await reader.readline():
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def test_nb05_readline_handler_gets_the_readline_hint():
    fails_with(nb05.check_handle(handle_readline), "readline")


def analyse_forgets_return(received, count):
    result = {"lost": [], "duplicated": [], "late": 0}  # noqa: F841 - no return


def test_nb06_analyse_without_return_gets_the_return_hint():
    fails_with(nb06.check_analyse(analyse_forgets_return), "return", what=["None"])


def ask_forgets_return(port, request):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        b"".join(chunks)


def test_nb07_ask_without_return_gets_the_return_hint():
    fails_with(nb07.check_ask(ask_forgets_return), "return", what=["None"])


# --- reference solutions are safe code to copy -----------------------------------------------


def test_nb06_request_solution_is_bounded_while_stale_replies_keep_coming():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(0.02)
        done = threading.Event()

        def stale_forever():
            client = None
            while not done.is_set():
                try:
                    _, client = server.recvfrom(65535)
                except TimeoutError:
                    pass
                if client is not None:
                    server.sendto(b"999:STALE", client)

        thread = threading.Thread(target=stale_forever, daemon=True)
        thread.start()
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                sol06.request(server.getsockname(), 7, b"hello", timeout=0.1, retries=3)
        finally:
            done.set()
            thread.join(2)
        assert time.monotonic() - started < 3.0  # 3 attempts of 0.1 s, not for ever


def test_nb05_fetch_all_solution_never_returns_none_entries():
    with socket.socket() as listener:  # accepts and resets every connection
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def resetter():
            listener.settimeout(0.05)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

        thread = threading.Thread(target=resetter, daemon=True)
        thread.start()
        try:
            try:
                result = sol05.fetch_all(port, [b"a", b"b"])
            except OSError:
                result = "raised"
        finally:
            stop.set()
            thread.join(2)
    assert result == "raised"


def test_nb04_serve_lines_solution_limits_the_line_length():
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)

    def send_a_long_line():
        try:
            b.sendall(b"x" * (2 << 20))  # 2 MiB, no b'\n'
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server side closed first: that is the point

    sender = threading.Thread(target=send_a_long_line, daemon=True)
    sender.start()
    with b:
        with a:
            try:
                sol04.serve_lines(a)
            except OSError:
                pass
            a.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := b.recv(65536):
                reply += chunk
        sender.join(5)  # a is closed: the sender's sendall ends
    assert reply.startswith(b"ERR "), reply[:80]


def test_nb07_graceful_server_solution_survives_a_slow_reader():
    stop = threading.Event()
    from helpers import netlab

    srv = netlab.serve(sol07.graceful_server, stop, port=None, announce=False, name="slow-reader")
    try:
        with socket.socket() as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.settimeout(5)
            client.connect(("127.0.0.1", srv.port))
            payload = b"x" * (4 << 20)
            sender = threading.Thread(target=client.sendall, args=(payload,), daemon=True)
            sender.start()
            # read nothing until the server is stuck in sendall (its send buffer full)
            srv.wait_quiet(2.0)
            got = 0
            while got < len(payload):
                chunk = client.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
            sender.join(5)
        assert got == len(payload)
        assert not srv.errors, srv.errors
    finally:
        stop.set()
        srv.stop()


async def handle_spins_at_eof(reader, writer):
    while True:
        data = await reader.read(65536)  # b'' at once, for ever, once the client has closed
        writer.write(data)
        await writer.drain()


def test_nb05_handler_spinning_at_eof_gets_a_verdict_that_says_so():
    fails_with(nb05.check_handle(handle_spins_at_eof), "event loop", "b''")


def echo_server_asyncio_run(port):
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def test_nb04_echo_server_with_asyncio_run_passes_and_stops():
    passes(nb04.check_echo_server(echo_server_asyncio_run))
    leftover = [t for t in threading.enumerate() if t.name.startswith("check-")]
    assert not [t for t in leftover if t.is_alive()], leftover


def test_nb03_upper_server_solution_survives_a_reset_and_bad_bytes():
    from helpers import netlab

    with netlab.serve(sol03.upper_server, port=None, announce=False, name="bad-bytes") as srv:
        # a client that resets its connection mid-request (close with SO_LINGER 0)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as vanishing:
            vanishing.sendall(b"half a requ")
            vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        for request, expected in [(b"\xff\xfe", b""), (b"abc", b"ABC")]:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as client:
                client.sendall(request)
                client.shutdown(socket.SHUT_WR)
                reply = b""
                while chunk := client.recv(4096):
                    reply += chunk
            assert reply == expected
        assert not srv.errors, srv.errors


STRANGER_PYTHON = "/usr/bin/python3"  # one that user nobody may run (not in /root)


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0 or not os.path.exists(STRANGER_PYTHON),
    reason="needs root (to be another user) and a system python",
)
@pytest.mark.parametrize("tables", ["netlink", "proc"])
def test_a_connection_of_another_user_is_not_trusted(tables, monkeypatch):
    """The owners of a peer come from netlink's sock_diag (the sockets on one port), or,
    where that does not answer, from /proc/net/tcp: both tell the stranger apart."""
    from helpers.exercises import _checker
    from helpers.exercises._checker import from_this_process
    from helpers.netlab import _netlink

    if tables == "netlink":
        assert _netlink.available(), "this Linux answers sock_diag"
        asked = []
        real = _netlink.rows_on_ports
        monkeypatch.setattr(
            _netlink, "rows_on_ports", lambda ports: asked.append(ports) or real(ports)
        )
    else:
        monkeypatch.setattr(_checker._netlink, "rows_on_ports", lambda ports: None)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        port = listener.getsockname()[1]
        stranger = subprocess.Popen(
            [
                STRANGER_PYTHON,
                "-c",
                "import socket, sys; s = socket.create_connection(('127.0.0.1', %d)); "
                "sys.stdin.read()" % port,
            ],
            stdin=subprocess.PIPE,
            user=65534,  # nobody
        )
        try:
            conn, peer = listener.accept()
            with conn:
                assert not from_this_process(peer, toward=conn.getsockname())
            with socket.create_connection(("127.0.0.1", port), timeout=5) as mine:
                conn, peer = listener.accept()
                with conn:
                    assert peer == mine.getsockname()
                    assert from_this_process(peer, toward=conn.getsockname())
        finally:
            stranger.communicate(b"", timeout=10)
    if tables == "netlink":
        assert asked and all(len(ports) == 1 for ports in asked), asked  # one port, not all


def _overrun(func):
    """Run ``func`` as a check runs a learner's function, let it overrun, end() it; what
    happened in its thread."""
    from helpers.exercises._checker import WatchedCall

    done = threading.Event()
    outcome = {}

    def watched():
        try:
            func()
            outcome["returned"] = True
        except BaseException as exc:  # noqa: BLE001 - what is raised is the point
            outcome["raised"] = type(exc).__name__
        finally:
            done.set()

    call = WatchedCall(watched)
    threading.Thread(target=call, daemon=True).start()
    while call.thread is None:
        threading.Event().wait(0.01)
    call.end(port=1)
    assert done.wait(10), "the function never ended"
    return outcome


def test_an_overrun_function_asleep_in_c_is_not_sent_an_exception_it_cannot_take():
    """A thread inside a C call (time.sleep) cannot take an exception; left pending, it
    makes every other thread of the kernel check for it at each step (found while
    checking notebook 11). end() leaves such a thread alone: it wakes and returns."""
    assert _overrun(lambda: time.sleep(1.5)) == {"returned": True}


def test_an_overrun_function_spinning_in_python_is_interrupted():
    def spin():
        while True:
            pass

    assert _overrun(spin) == {"raised": "_Overran"}


def test_nb04_a_client_of_the_crowd_is_named_by_its_number_in_the_run():
    """The 8th connection the server accepts (in the second wave of 5) is reset: the
    verdict names one client, of the second wave (6 to 10), once. (When a client's own
    call failed, many_clients' own prefix, which numbers a wave's clients from 1, came
    after the run's: 'client 8: client 3 got ...'; it is dropped now.)"""

    def resets_the_eighth(port):
        with socket.create_server(("127.0.0.1", port)) as listener:
            for count in itertools.count(1):
                conn, _ = listener.accept()
                if count == 8:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()  # a reset
                    continue
                with conn, contextlib.suppress(ConnectionError):
                    while data := conn.recv(65536):
                        conn.sendall(data)

    verdict = nb04.check_echo_server(resets_the_eighth)
    fails_with(verdict)
    named = re.findall(r"client (\d+)", verdict.failure.what)
    assert len(named) == 1 and 6 <= int(named[0]) <= 10, str(verdict)


def test_nb03_download_server_that_stops_after_two_clients_names_the_third():
    def two_then_stop(port, data):
        with socket.create_server(("127.0.0.1", port)) as listener:
            for _ in range(2):
                conn, _ = listener.accept()
                with conn:
                    conn.sendall(data)

    verdict = nb03.check_download_server(two_then_stop)
    fails_with(verdict, what=["the third client was refused"])


def test_nb04_a_server_that_closes_on_any_bye_reply_is_caught():
    """A walkthrough's reading of 'close after BYE': `if reply == "BYE"` (the reference
    did it too) also ends the conversation after `ECHO BYE`."""

    def closes_on_bye(port):
        with socket.create_server(("127.0.0.1", port)) as listener:
            while True:
                conn, _ = listener.accept()
                with conn, contextlib.suppress(ConnectionError, TimeoutError):
                    conn.settimeout(10)
                    buffer = b""
                    while chunk := conn.recv(4096):
                        buffer += chunk
                        while b"\n" in buffer:
                            line, _, buffer = buffer.partition(b"\n")
                            try:
                                reply = sol04.handle_command(line.rstrip(b"\r").decode())
                            except UnicodeDecodeError:
                                reply = "ERR not UTF-8"
                            conn.sendall(reply.encode() + b"\n")
                            if reply == "BYE":
                                break
                        else:
                            continue
                        break

    verdict = nb04.check_command_server(closes_on_bye)
    fails_with(
        verdict, "not after any reply BYE", what=["got b'BYE\\n', expected b'BYE\\nPONG\\n'"]
    )


def test_nb03_recv_message_without_recv_exactly_names_exercise_1s_cell():
    """After a restart, Exercise 3's recv_message calls Exercise 1's recv_exactly, whose
    cell has not run again: the hint names that cell (it said 'Read the exception above',
    and no exception was shown)."""
    namespace = {}
    exec(  # a cell of the notebook: its globals lack recv_exactly, as after a restart
        "import struct\n"
        "def recv_message(sock):\n"
        "    (length,) = struct.unpack('!I', recv_exactly(sock, 4))\n"
        "    return recv_exactly(sock, length).decode()\n",
        namespace,
    )
    verdict = nb03.check_recv_message(namespace["recv_message"])
    fails_with(verdict, "run the cell that defines recv_exactly", what=["NameError"])
    assert "did you mean" not in verdict.hint, str(verdict)
