"""The last gaps of issue 10's checks, found by the newcomer walkthroughs: wrong answers
that passed, now caught with a hint that names their cause, and correct answers in other
styles that must still pass.

- nb04 ``echo_server``: the silent-client timeout the task asks for (none at all, or a
  TimeoutError that is not caught);
- nb03 ``download_server``: a client that vanishes mid-download (no try/except);
- nb05 ``handle``: ``writer.close()`` without ``await writer.wait_closed()``;
- nb07 ``graceful_server``: closing with the client's bytes unread (an RST, not a FIN).

Each wrong answer is asserted on the row that catches it, so that the verdict names the
real cause on every run.
"""

from __future__ import annotations

import asyncio
import select
import socket
import socketserver

import pytest
from exercise_asserts import assert_passes, fails_with

from helpers.exercises import nb03, nb04, nb05, nb07

# --- nb04 echo_server: a client that says nothing ---------------------------------------------

SILENT = "a silent client: its connection times out, then the next client"


def echo_without_timeout(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.send(data)  # send, not sendall: the walkthrough's answer
            except ConnectionError:
                pass


def echo_timeout_not_caught(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        conn.settimeout(10)
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except ConnectionError:  # TimeoutError is not a ConnectionError
                pass


def echo_sets_its_timeout_before_every_recv(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        with conn:
            try:
                while True:
                    conn.settimeout(10)  # the check's shortened timeout is undone: not waited
                    data = conn.recv(4096)
                    if not data:
                        break
                    conn.sendall(data)
            except (ConnectionError, TimeoutError):
                pass


class _TimedEchoHandler(socketserver.StreamRequestHandler):
    timeout = 10  # setup() calls settimeout(10) on the connection

    def handle(self):
        try:
            while data := self.rfile.read1(4096):
                self.wfile.write(data)
        except (ConnectionError, TimeoutError):
            pass


def echo_socketserver_with_timeout(port):
    with socketserver.TCPServer(("127.0.0.1", port), _TimedEchoHandler) as server:
        server.serve_forever()


def echo_default_timeout(port):
    with socket.create_server(("127.0.0.1", port)) as s:
        while True:
            conn, _ = s.accept()
            conn.settimeout(2.5)
            try:
                with conn:
                    for data in iter(lambda conn=conn: conn.recv(1 << 16), b""):
                        conn.sendall(data)
            except OSError:  # ConnectionError and TimeoutError are OSErrors
                continue


def echo_asyncio(port):
    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def test_nb04_echo_without_a_timeout_is_caught_on_the_silent_client():
    verdict = nb04.check_echo_server(echo_without_timeout)
    fails_with(verdict, "conn.settimeout(10)", "TimeoutError", what=["had no timeout"])
    assert verdict.failure is verdict.outcomes[-1].failure, str(verdict)  # that row, not another
    assert SILENT in str(verdict)


def test_nb04_timeout_error_not_caught_is_named():
    verdict = nb04.check_echo_server(echo_timeout_not_caught)
    fails_with(
        verdict,
        "except (ConnectionError, TimeoutError)",
        what=["crashed with TimeoutError"],
    )


@pytest.mark.parametrize(
    "server",
    [
        echo_sets_its_timeout_before_every_recv,
        echo_socketserver_with_timeout,
        echo_default_timeout,
        echo_asyncio,  # non-blocking sockets (timeout 0.0): a silent client holds nothing
    ],
)
def test_nb04_correct_echo_servers_with_a_timeout_pass(server):
    assert_passes(nb04.check_echo_server(server))


# --- nb03 download_server: a client that vanishes mid-download ---------------------------------


def download_without_try(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        conn.settimeout(5)
        with conn:
            conn.sendall(data)


def download_catching_oserror_with_makefile(port, data):
    with socket.create_server(("127.0.0.1", port)) as s:
        while True:
            conn, _ = s.accept()
            conn.settimeout(5)
            try:
                with conn, conn.makefile("wb") as out:
                    out.write(data)
            except OSError:
                pass


def test_nb03_download_server_without_try_is_caught_when_a_client_vanishes():
    verdict = nb03.check_download_server(download_without_try)
    fails_with(
        verdict,
        "vanish",
        "except (ConnectionError, TimeoutError)",
        what=["crashed with ConnectionResetError"],
    )


def test_nb03_download_server_in_another_style_passes():
    assert_passes(nb03.check_download_server(download_catching_oserror_with_makefile))


# --- nb05 handle: close() without wait_closed() ---------------------------------------------


async def handle_without_wait_closed(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def handle_with_wait_closed_in_finally(reader, writer):
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()


def test_nb05_handle_without_wait_closed_is_caught():
    verdict = nb05.check_handle(handle_without_wait_closed)
    fails_with(
        verdict,
        "await writer.wait_closed()",
        "only starts the close",
        what=["without `await writer.wait_closed()`"],
    )
    assert "✗ closes when the client has finished" in str(verdict)


def test_nb05_handle_with_wait_closed_in_finally_passes():
    assert_passes(nb05.check_handle(handle_with_wait_closed_in_finally))


# --- nb07 graceful_server: the client's unread bytes at close() ------------------------------

UNREAD = "stopped while bytes of the client's are unread"


def graceful_without_reading_the_rest(port, stop):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        while not stop.is_set():
            if not select.select([listener], [], [], 0.1)[0]:
                continue
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                try:
                    while not stop.is_set():
                        if not select.select([conn], [], [], 0.1)[0]:
                            continue
                        data = conn.recv(4096)
                        if not data:
                            break
                        conn.sendall(data)
                except (ConnectionError, TimeoutError):
                    pass


def graceful_half_closes_then_reads_to_the_end(port, stop):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                try:
                    conn.settimeout(0.1)
                    while not stop.is_set():
                        try:
                            data = conn.recv(4096)
                        except TimeoutError:
                            continue
                        if not data:
                            break
                        conn.settimeout(5)
                        conn.sendall(data)
                        conn.settimeout(0.1)
                    if stop.is_set():  # FIN first, then read what the client still sends
                        conn.shutdown(socket.SHUT_WR)
                        conn.settimeout(1)
                        while conn.recv(65536):
                            pass
                except OSError:
                    pass


def test_nb07_graceful_server_closing_with_unread_bytes_is_caught():
    verdict = nb07.check_graceful_server(graceful_without_reading_the_rest)
    fails_with(verdict, "BlockingIOError", "RST", what=["ConnectionResetError", "unread"])
    assert f"✗ {UNREAD}" in str(verdict)


def test_nb07_graceful_server_that_half_closes_and_drains_passes():
    assert_passes(nb07.check_graceful_server(graceful_half_closes_then_reads_to_the_end))


# --- nb04 echo_server: send() that sends part of a chunk; command_server's silent client ----


def echo_with_send_of_big_chunks(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        conn.settimeout(10)
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.send(data)  # its return value (how much it took) is ignored
            except (ConnectionError, TimeoutError):
                pass


def test_nb04_send_that_takes_only_part_of_a_chunk_is_caught():
    verdict = nb04.check_echo_server(echo_with_send_of_big_chunks)
    fails_with(verdict, "sendall()", "only part", what=["of 262,144 bytes came back"])
    assert "✗ 256 KiB to a client that reads only once your server waits" in str(verdict)


def command_server_without_timeout(port):
    from helpers.exercises.solutions.nb04 import serve_lines

    with socket.create_server(("127.0.0.1", port)) as s:
        while True:
            conn, _ = s.accept()
            with conn:
                try:
                    serve_lines(conn)
                except ConnectionError:
                    pass


def command_server_timeout_not_caught(port):
    from helpers.exercises.solutions.nb04 import serve_lines

    with socket.create_server(("127.0.0.1", port)) as s:
        while True:
            conn, _ = s.accept()
            conn.settimeout(10)
            with conn:
                try:
                    serve_lines(conn)
                except ConnectionError:
                    pass


def test_nb04_command_server_silent_client():
    fails_with(
        nb04.check_command_server(command_server_without_timeout),
        "conn.settimeout(10)",
        what=["had no timeout"],
    )
    fails_with(
        nb04.check_command_server(command_server_timeout_not_caught),
        "except (ConnectionError, TimeoutError)",
        what=["crashed with TimeoutError"],
    )


# --- nb03 download_server: a client that stops reading; a timeout on the listener -----------


def download_timeout_not_caught(port, data):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen()
    while True:
        conn, _ = s.accept()
        conn.settimeout(5)
        with conn:
            try:
                conn.sendall(data)
            except ConnectionError:  # a client that stops reading raises TimeoutError
                pass


def test_nb03_download_server_that_does_not_catch_timeout_error_is_caught():
    verdict = nb03.check_download_server(download_timeout_not_caught)
    fails_with(verdict, "stops reading", "TimeoutError", what=["crashed with TimeoutError"])
    assert "✗ a client that stops reading: after your timeout" in str(verdict)


def test_a_timeout_on_the_listening_socket_is_named_when_accept_raises():
    from helpers.exercises._checker import _crash_hint

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.01)
        try:
            conn, addr = listener.accept()
        except TimeoutError as exc:
            error = exc
    assert "the listening socket has a timeout" in _crash_hint(None, error)
