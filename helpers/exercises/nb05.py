"""Exercises of notebook 05, many clients.

    nb05.check_threaded_server(threaded_server)
    nb05.check_handle(handle)                  # async def handle(reader, writer)
    nb05.check_fetch_all(fetch_all)

The checks connect several clients at once to the learner's server, or serve several
connections at once to the learner's client; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time

from helpers.exercises._checker import (
    Failure,
    NotDone,
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

HINT_ONE_AT_A_TIME = (
    "Your server serves one client at a time. After accept(), hand the connection to a new "
    "thread with threading.Thread(target=..., args=(conn,)).start() and go straight back to "
    "accept(). Not .run(): it runs the function in the accepting thread."
)
HINT_LOOP = (
    "Keep the conversation going: loop on recv() and echo each chunk, until recv() returns "
    "b'' (the client closed)."
)


def _echo(server, client, message: bytes, sent: str, hint: str, timeout: float = 2.0) -> None:
    client.sendall(message)
    data, how = read_reply(client, server, lambda d: len(d) >= len(message), timeout=timeout)
    if data != message:
        raise Failure(f"the echo was {show_bytes(data)} ({how})", hint, sent)


# --- Exercise 1: threaded_server(port) ------------------------------------------------------


def check_threaded_server(threaded_server) -> object:
    def two_messages():
        with serving(threaded_server) as srv, connect(srv) as client:
            _echo(srv, client, b"hello", "b'hello'", HINT_LOOP)
            _echo(
                srv, client, b"world", "b'hello', then b'world' on the same connection", HINT_LOOP
            )

    def second_client():
        sent = "client A connects and stays; client B sends b'B'"
        with serving(threaded_server) as srv, connect(srv) as a, connect(srv) as b:
            _echo(srv, a, b"A", sent, HINT_LOOP)
            _echo(srv, b, b"B", sent, HINT_ONE_AT_A_TIME, timeout=1.0)

    def twenty_clients():
        with serving(threaded_server) as srv:

            def conversation(index):
                message = f"client {index}".encode()
                with connect(srv) as client:
                    _echo(
                        srv,
                        client,
                        message,
                        f"20 clients at once; {message!r}",
                        HINT_ONE_AT_A_TIME,
                        timeout=5.0,
                    )

            for result in many_clients(20, conversation):
                if isinstance(result, Failure):
                    raise Failure(
                        result.what,
                        result.hint or HINT_ONE_AT_A_TIME,
                        result.sent or "20 clients at once",
                    )

    return run_checks(
        "threaded_server(port)",
        [
            ("echoes two messages on one connection", two_messages),
            ("echoes client B while client A stays connected", second_client),
            ("echoes 20 clients at once", twenty_clients),
        ],
    )


# --- Exercise 2: async def handle(reader, writer) ---------------------------------------------


def check_handle(handle) -> object:
    stub = threading.Event()

    async def guarded(reader, writer):
        try:
            await handle(reader, writer)
        except NotImplementedError:
            stub.set()
            writer.close()

    async def handle_server(port):
        server = await asyncio.start_server(guarded, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    def judged(scenario):
        def run():
            try:
                with serving(handle_server) as srv:
                    scenario(srv)
            except Failure:
                if stub.is_set():
                    raise NotDone() from None
                raise
            if stub.is_set():
                raise NotDone()

        return run

    def as_it_arrives(srv):
        with connect(srv) as client:
            _echo(
                srv,
                client,
                b"hello",
                "b'hello' (the connection stays open)",
                "reader.read() without a size waits for the end of the stream. Use "
                "await reader.read(65536): it returns what has arrived.",
            )

    def two_messages(srv):
        with connect(srv) as client:
            _echo(srv, client, b"hello", "b'hello'", HINT_LOOP)
            _echo(
                srv,
                client,
                b"world",
                "b'hello', then b'world'",
                "Loop: `while data := await reader.read(65536):` write it and drain.",
            )

    def closes(srv):
        with connect(srv) as client:
            _echo(srv, client, b"bye", "b'bye'", HINT_LOOP)
            client.shutdown(socket.SHUT_WR)
            data, how = read_to_eof(client, srv, timeout=2.0)
        if how != "eof":
            raise Failure(
                f"the connection stayed open ({how}) after the client finished sending",
                "When read() returns b'', leave the loop and close: writer.close(), then "
                "await writer.wait_closed() (a try/finally does it even after an error).",
                "b'bye', then the client half-closes",
            )

    def big(srv):
        payload = bytes(range(256)) * 4096  # 1 MiB
        with connect(srv) as client:
            send_in_background(client, payload, shut=True)
            data, how = read_to_eof(client, srv, timeout=5.0)
        if data != payload:
            raise Failure(
                f"the echo was {show_bytes(data)} ({how})",
                "Echo every chunk: write(data) then await writer.drain().",
                "1 MiB sent while reading the echo",
            )

    return run_checks(
        "handle(reader, writer)",
        [
            ("echoes a message as it arrives", judged(as_it_arrives)),
            ("echoes two messages on one connection", judged(two_messages)),
            ("closes when the client has finished", judged(closes)),
            ("echoes 1 MiB", judged(big)),
        ],
    )


# --- Exercise 3: fetch_all(port, requests) ----------------------------------------------------


def reply_for(request: bytes) -> bytes:
    """What the check's server answers: the request in capitals, repeated to ~100 KB."""
    line = request.upper() + b"\n"
    return line * (100_000 // len(line) + 1)


class GatherServer:
    """Answers only once ``count`` connections are open, last one first.

    Each request is read until EOF. If fewer than ``count`` connections arrive within
    ``patience`` s, everyone is closed without an answer (``most_open`` says how many came).
    Replies go out in reverse order of arrival, each one after the previous client closed
    (waited for at most ``CLOSE_WAIT`` s), so "first finished" is never "first asked".
    """

    CLOSE_WAIT = 0.3

    def __init__(self, count: int, patience: float = 2.0):
        self.count = count
        self.patience = patience
        self.most_open = 0
        self.missing_eof = False
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(count + 8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, name="exercise-gather", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.patience
        requests = []
        try:
            while len(self.conns) < self.count and time.monotonic() < deadline:
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                self.conns.append(conn)
                self.most_open = len(self.conns)
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                request = bytearray()
                while chunk := conn.recv(65536):
                    request += chunk
                requests.append(bytes(request))
            if len(requests) < self.count:
                return
            for conn, request in reversed(list(zip(self.conns, requests, strict=True))):
                conn.settimeout(5)
                conn.sendall(reply_for(request))
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(self.CLOSE_WAIT)
                with contextlib.suppress(OSError):
                    while conn.recv(65536):
                        pass
        except TimeoutError:
            self.missing_eof = True
        except OSError:
            pass
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.close()


def check_fetch_all(fetch_all) -> object:
    def exchange(requests, sent):
        server = GatherServer(len(requests))
        call = call_bounded(
            fetch_all, server.port, list(requests), timeout=8.0, on_timeout=server.close
        )
        server.thread.join(2.0)
        server.close()
        if requests and server.most_open < len(requests):
            raise Failure(
                f"only {server.most_open} of {len(requests)} connections were open at the same "
                "time",
                "Open every connection before waiting for any reply: start one thread per "
                "request (start them all, then join them all).",
                sent,
            )
        if server.missing_eof:
            raise Failure(
                "the server never saw the end of a request",
                "After sendall(request), call sock.shutdown(socket.SHUT_WR).",
                sent,
            )
        if not call.finished:
            raise Failure(
                "it was still running 8 s later",
                "Read each reply until recv() returns b'', then return.",
                sent,
            )
        if call.error is not None:
            raise Failure(
                f"it raised {describe_exception(call.error)}",
                "Read the exception; return a list of bytes.",
                sent,
            )
        expected = [reply_for(r) for r in requests]
        result = list(call.result) if isinstance(call.result, list | tuple) else call.result
        if result == expected:
            return
        if isinstance(result, list) and sorted(map(bytes, result)) == sorted(expected):
            raise Failure(
                "it returned the right replies in the wrong order (the order they finished)",
                "Store each reply at its request's index (replies[i] = ...), not with append().",
                sent,
            )
        if (
            isinstance(result, list)
            and len(result) == len(expected)
            and all(
                isinstance(r, bytes) and e.startswith(r)
                for r, e in zip(result, expected, strict=True)
            )
        ):
            raise Failure(
                "the replies were cut short (only what the first recv() returned)",
                "Each reply is ~100 KB: call recv() in a loop until it returns b''.",
                sent,
            )
        raise Failure(
            f"it returned {str(result)[:80]}",
            "Return a list with one bytes reply per request, in order.",
            sent,
        )

    five = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon"]
    return run_checks(
        "fetch_all(port, requests)",
        [
            (
                "5 requests at once, replies in request order",
                lambda: exchange(five, "b'alpha', b'beta', b'gamma', b'delta', b'epsilon'"),
            ),
            ("no requests: []", lambda: exchange([], "[]")),
        ],
    )
