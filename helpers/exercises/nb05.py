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
import gc
import logging
import selectors
import socket
import threading
import time
import warnings

from helpers.exercises._checker import (
    REPLY_TIMEOUT,
    Failure,
    NotDone,
    call_bounded,
    connect,
    describe_exception,
    from_this_process,
    many_clients,
    read_reply,
    read_to_eof,
    returned_none,
    run_checks,
    send_in_background,
    serving,
    show_bytes,
    still_listens,
)

HINT_ONE_AT_A_TIME = (
    "Your server serves one client at a time. After accept(), hand the connection to a new "
    "thread with threading.Thread(target=..., args=(conn,)).start() and go straight back to "
    "accept(). Not .run(): it runs the function in the accepting thread."
)
HINT_ACCEPT_LOOP = (
    "A server serves client after client: put accept() and the start of the client's thread "
    "in a `while True:` loop, and keep the listening socket open."
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
            client.shutdown(socket.SHUT_WR)
            _, how = read_to_eof(client, srv, timeout=2.0)
            if how != "eof":
                raise Failure(
                    f"the connection stayed open ({how}) after the client had closed its side",
                    "When recv() returns b'', the client has finished: close the connection "
                    "(`with conn:` around the loop in the thread's function closes it), or the "
                    "client waits for ever and your server keeps the socket.",
                    "b'hello', b'world', then the client closes its sending side",
                )

    def busy_client():
        sent = (
            "client A sends until its sends stall, reading none of the echo for now; "
            "meanwhile client B sends b'B'"
        )
        limit = 64 * 1024 * 1024
        chunk = bytes(range(256)) * 256  # 64 KiB
        total = 0
        with serving(threaded_server) as srv, socket.socket() as a:
            # Small buffers on A's side: the echo that A does not read soon fills them, and
            # then the server's sendall() to A waits. A thread per client waits alone.
            a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            a.settimeout(REPLY_TIMEOUT)
            a.connect(("127.0.0.1", srv.port))
            a.setblocking(False)
            with selectors.DefaultSelector() as selector:
                selector.register(a, selectors.EVENT_WRITE)
                # 0.5 s without progress: every buffer on the way is full, the server waits
                while total < limit and selector.select(0.5):
                    with contextlib.suppress(BlockingIOError):
                        total += a.send(chunk)
            a.settimeout(REPLY_TIMEOUT)
            if not still_listens(srv):
                raise Failure(
                    "your server no longer listened after client A", HINT_ACCEPT_LOOP, sent
                )
            try:
                with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as b:
                    b.sendall(b"B")
                    data, how = read_reply(b, srv, lambda d: len(d) >= 1, timeout=2.0)
            except OSError as exc:
                data, how = b"", describe_exception(exc)
            with contextlib.suppress(OSError):
                a.shutdown(socket.SHUT_WR)
            echoed, _ = read_to_eof(a, srv, timeout=10.0)  # now A reads: its thread can end
            if data != b"B":
                raise Failure(
                    f"client B got no echo within 2 s ({how}) while your server was sending "
                    "to client A, who was not reading",
                    "One thread serves everyone, so a sendall() to a client that does not read "
                    "stops all the others. " + HINT_ONE_AT_A_TIME,
                    sent,
                )
            if len(echoed) != total:
                raise Failure(
                    "client A did not get all of its bytes back",
                    "Echo every chunk with sendall() until recv() returns b''.",
                    sent,
                )

    def second_client():
        sent = "client A connects and stays; client B sends b'B'"
        with serving(threaded_server) as srv, connect(srv) as a:
            try:
                # a server without an accept loop may have closed its listener already
                b = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            except ConnectionError:
                raise Failure(
                    "client B could not connect: your server stopped accepting after client A",
                    HINT_ACCEPT_LOOP,
                    sent,
                ) from None
            with b:
                _echo(srv, a, b"A", sent, HINT_LOOP)
                try:
                    b.sendall(b"B")
                    data, how = read_reply(b, srv, lambda d: len(d) >= 1, timeout=1.0)
                except ConnectionError:
                    data, how = b"", "reset"
            if data == b"B":
                return
            if how in ("reset", "eof") and not data:
                raise Failure(
                    f"client B's connection was closed without an answer ({how}): your "
                    "server stopped accepting after client A",
                    HINT_ACCEPT_LOOP,
                    sent,
                )
            raise Failure(f"the echo was {show_bytes(data)} ({how})", HINT_ONE_AT_A_TIME, sent)

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
            ("echoes client B while client A does not read its echo", busy_client),
        ],
    )


# --- Exercise 2: async def handle(reader, writer) ---------------------------------------------


def _handler_hint(exc: BaseException) -> str:
    if isinstance(exc, TypeError) and "coroutine" in str(exc):
        return (
            "reader.read(...) without await gives a coroutine, not bytes: write "
            "`data = await reader.read(65536)` (and `await writer.drain()`)."
        )
    if isinstance(exc, RuntimeError) and "asyncio.run()" in str(exc):
        return (
            "handle already runs inside the server's event loop: do not call asyncio.run() "
            "in it; `await` the coroutine instead (await reader.read(65536))."
        )
    return "Read the exception: handle must echo until read() returns b'', then close."


def _call_of(name: str) -> str:
    """``StreamWriter.drain`` -> ``writer.drain()``: the call as the learner wrote it."""
    owner, _, method = name.rpartition(".")
    variable = {"StreamWriter": "writer", "StreamReader": "reader"}.get(owner, owner.lower())
    return f"{variable}.{method}()" if variable else f"{method}()"


def check_handle(handle) -> object:
    stub = threading.Event()
    crashes: list[tuple[str, str]] = []  # (what, hint); text only, so no frame stays alive
    unawaited: list[str] = []
    client_resets = threading.Event()  # set when the check itself closes with unread data

    async def guarded(reader, writer):
        try:
            await handle(reader, writer)
        except NotImplementedError:
            stub.set()
            writer.close()
        except ConnectionError as exc:
            if not client_resets.is_set():  # the check's own reset is not your mistake
                crashes.append(
                    (f"your handler raised {describe_exception(exc)}", _handler_hint(exc))
                )
            writer.close()
        except Exception as exc:  # noqa: BLE001 - reported in the verdict
            crashes.append((f"your handler raised {describe_exception(exc)}", _handler_hint(exc)))
            writer.close()

    async def handle_server(port):
        loop = asyncio.get_running_loop()
        loop.set_debug(True)  # asyncio then logs every step that held the loop too long
        loop.slow_callback_duration = BLOCKED_LOOP
        server = await asyncio.start_server(guarded, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    def judged(scenario):
        def attempt():
            failure = None
            slow = _SlowSteps()
            with slow, warnings.catch_warnings(record=True) as caught:
                # A coroutine that is never awaited warns when it is dropped: record that
                # (it names the forgotten await) instead of printing it in a later cell.
                warnings.simplefilter("always", RuntimeWarning)
                try:
                    with serving(handle_server) as srv:
                        scenario(srv)
                except Failure as exc:
                    failure = exc
            unawaited.extend(
                str(w.message) for w in caught if "was never awaited" in str(w.message)
            )
            return failure, slow

        def run():
            failure, slow = attempt()
            if slow.longest is not None and failure is None and not stub.is_set():
                # One slow step in a scenario that passed may be a busy machine (this
                # thread got no CPU for a while), not the handler: a handler that blocks
                # does so again. Only a step that is slow on a second run counts.
                failure, slow = attempt()
            if stub.is_set():
                raise NotDone()
            if slow.longest is not None:
                raise Failure(
                    f"your handler held the event loop for more than {BLOCKED_LOOP:g} s in one "
                    "go, and no other client could be served meanwhile",
                    "Everything that waits inside an async def must be awaited, so that the "
                    "event loop serves the other clients meanwhile: `await asyncio.sleep(...)`, "
                    "not time.sleep(); `await reader.read(...)`, not a blocking sock.recv(). "
                    "And leave the loop when read() returns b'' (the client has finished): "
                    "from then on it returns b'' at once, and a loop that goes on never lets "
                    "the event loop run.",
                    failure.sent if failure else None,
                )
            if crashes:
                what, hint = crashes[0]
                if failure is not None:
                    what = f"{failure.what}; {what}"
                raise Failure(what, hint, failure.sent if failure else None)
            if unawaited:
                name = unawaited[0].split("'")[1] if "'" in unawaited[0] else "a coroutine"
                raise Failure(
                    f"Python warned: {unawaited[0]}",
                    f"Calling {_call_of(name)} without await does nothing: write "
                    f"`await {_call_of(name)}`.",
                    failure.sent if failure else None,
                )
            if failure is not None:
                raise failure

        return run

    def as_it_arrives(srv):
        with connect(srv) as client:
            _echo(
                srv,
                client,
                b"hello",
                "b'hello' (the connection stays open)",
                "reader.read() without a size waits for the end of the stream, and "
                "reader.readline() for a b'\\n' (this client sends none). Use "
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

    def backpressure(srv):
        # The client sends and never reads. With drain(), the handler stops reading once
        # its write buffer is full, so the client's sends stall (TCP's window closes).
        # Without it, the handler reads on and buffers everything in memory. The buffers
        # on the way (this client's are small; the kernel's at most tens of MB) cannot
        # hold 64 MiB, so sending all of it is proof that nobody waited.
        limit = 64 * 1024 * 1024
        chunk = bytes(65536)
        total = 0
        with socket.socket() as client, selectors.DefaultSelector() as selector:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            client.settimeout(REPLY_TIMEOUT)
            client.connect(("127.0.0.1", srv.port))
            client.setblocking(False)
            selector.register(client, selectors.EVENT_WRITE)
            while total < limit and selector.select(0.5):  # 0.5 s without progress: stalled
                with contextlib.suppress(BlockingIOError):
                    total += client.send(chunk)
            client_resets.set()  # closing with the echo unread resets the connection
        if total >= limit:
            raise Failure(
                "the client sent 64 MiB without reading any of the echo, and your handler "
                "kept reading: it held everything in memory",
                "After writer.write(data), `await writer.drain()`: it waits while the client "
                "is not reading, so the data stays out of your server's memory.",
                "64 MiB from a client that never reads",
            )

    return run_checks(
        "handle(reader, writer)",
        [
            ("echoes a message as it arrives", judged(as_it_arrives)),
            ("echoes two messages on one connection", judged(two_messages)),
            ("closes when the client has finished", judged(closes)),
            ("echoes 1 MiB", judged(big)),
            ("stops reading while the client does not read (drain)", judged(backpressure)),
        ],
        function=handle,
        coroutine=True,
    )


BLOCKED_LOOP = 0.5  # a handler step that holds the event loop this long blocks everyone


class _SlowSteps(logging.Handler):
    """Collects asyncio's debug-mode reports "Executing <Task ...> took 1.5 seconds"
    while it is entered (they go to this handler, not to the output); ``longest`` is the
    longest such step in seconds, or None."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.longest: float | None = None
        self.logger = logging.getLogger("asyncio")

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("Executing") and len(record.args or ()) >= 2:
            took = float(record.args[1])
            if took >= BLOCKED_LOOP:
                self.longest = max(self.longest or 0.0, took)

    def __enter__(self):
        self.previous = self.logger.propagate
        self.logger.addHandler(self)
        self.logger.propagate = False
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.propagate = self.previous


# --- Exercise 3: fetch_all(port, requests) ----------------------------------------------------


def _show_list(result) -> str:
    """``[None, None]`` or ``[b'ALPHA...', ...]``, short and the same on every run."""
    if not isinstance(result, list):
        return str(result)[:80]
    return "[" + ", ".join("None" if r is None else show_bytes(r, 16) for r in result) + "]"


def reply_for(request: bytes) -> bytes:
    """What the check's server answers: the request in capitals, repeated to ~100 KB."""
    line = request.upper() + b"\n"
    return line * (100_000 // len(line) + 1)


class GatherServer:
    """Answers only once ``count`` requests have arrived complete, last one first.

    Connections are accepted and read at the same time (a selector), each request until
    EOF, so a client that forgets to half-close is told so whatever the others do. If
    fewer than ``count`` complete requests arrive within ``patience`` s, everyone is closed
    without an answer (``most_open`` says how many connections came, ``missing_eof``
    whether one of them never ended its request). Replies go out in reverse order of
    arrival, each one after the previous client closed (waited for at most ``CLOSE_WAIT``
    s), so "first finished" is never "first asked".
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
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.requests: list[bytes] = []  # the requests that arrived complete, in order
        self.thread = threading.Thread(target=self._run, name="exercise-gather", daemon=True)
        self.thread.start()

    def _gather(self) -> list[bytes] | None:
        """The requests in order of arrival, or None when they were not all complete."""
        deadline = time.monotonic() + self.patience
        requests: dict[socket.socket, bytearray] = {}
        complete: set[socket.socket] = set()
        with selectors.DefaultSelector() as selector:
            selector.register(self.listener, selectors.EVENT_READ)
            while len(complete) < self.count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for key, _ in selector.select(min(remaining, 0.1)):
                    if key.fileobj is self.listener:
                        with contextlib.suppress(BlockingIOError):
                            conn, peer = self.listener.accept()
                            if not from_this_process(peer, toward=conn.getsockname()):
                                conn.close()  # a stranger's, not the learner's
                                continue
                            conn.setblocking(False)
                            self.conns.append(conn)
                            self.most_open = len(self.conns)
                            requests[conn] = bytearray()
                            selector.register(conn, selectors.EVENT_READ)
                        continue
                    conn = key.fileobj
                    try:
                        chunk = conn.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    if chunk:
                        requests[conn] += chunk
                    else:
                        complete.add(conn)
                        selector.unregister(conn)
        self.requests = [bytes(requests[conn]) for conn in self.conns if conn in complete]
        if len(complete) < self.count:
            self.missing_eof = any(conn not in complete for conn in self.conns)
            return None
        return [bytes(requests[conn]) for conn in self.conns]

    def _run(self) -> None:
        try:
            requests = self._gather()
            if requests is None:
                return
            for conn, request in reversed(list(zip(self.conns, requests, strict=True))):
                conn.settimeout(5)
                conn.sendall(reply_for(request))
                conn.shutdown(socket.SHUT_WR)
                conn.settimeout(self.CLOSE_WAIT)
                with contextlib.suppress(OSError):
                    while conn.recv(65536):
                        pass
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


@contextlib.contextmanager
def _thread_errors_kept():
    """Keep exceptions of threads started meanwhile out of the output (a learner's fetch
    threads that die when the check's server hangs up); yield the list they go to."""
    errors: list[BaseException] = []
    previous = threading.excepthook

    def keep(args):
        if args.exc_value is not None:
            errors.append(args.exc_value)

    threading.excepthook = keep
    try:
        yield errors
    finally:
        threading.excepthook = previous


def check_fetch_all(fetch_all) -> object:
    def exchange(requests, sent):
        server = GatherServer(len(requests))
        returned = {}

        def at_return(port, reqs):
            result = fetch_all(port, reqs)
            # What the caller gets is the list as it is now, not as threads fill it later.
            returned["object"] = result
            returned["copy"] = list(result) if isinstance(result, list | tuple) else result
            return returned["copy"]

        async def in_a_running_loop(port, reqs):
            # A notebook's cell runs inside an event loop: so does fetch_all here, or an
            # asyncio.run() in it would pass here and fail in the notebook.
            return at_return(port, reqs)

        def as_in_a_cell(port, reqs):
            return asyncio.run(in_a_running_loop(port, reqs))

        with _thread_errors_kept(), warnings.catch_warnings():
            # asyncio.run(main()) that fails leaves main() never awaited: Python would warn
            # about it in some later cell, far from the cause (the verdict names it here).
            warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
            call = call_bounded(
                as_in_a_cell, server.port, list(requests), timeout=8.0, on_timeout=server.close
            )
            if call.error is not None:
                call.error.__traceback__ = None  # its frames hold the coroutine
                gc.collect()
            server.thread.join(2.0)
            server.close()
        if isinstance(call.error, RuntimeError) and "asyncio.run()" in str(call.error):
            raise Failure(
                f"it raised {describe_exception(call.error)}",
                "In a notebook every cell already runs inside an event loop, so asyncio.run() "
                "fails there: write fetch_all with threads (one per request, start them all, "
                "then join them all).",
                sent,
            )
        if server.missing_eof:
            raise Failure(
                "the server never saw the end of a request",
                "After sendall(request), call sock.shutdown(socket.SHUT_WR): the server "
                "answers only once it has seen the end of the request.",
                sent,
            )
        if (
            requests
            and server.requests
            and sorted(server.requests) != sorted(requests)
            and len(set(server.requests)) < len(server.requests)
        ):
            raise Failure(
                "the server received one of the requests several times, and others never",
                "A lambda (or inner function) made in a loop sees the loop's variables as they "
                "are when it runs, by then the last ones: pass them as arguments instead, "
                "threading.Thread(target=fetch, args=(i, request)).",
                sent,
            )
        if requests and server.most_open < len(requests):
            raise Failure(
                f"only {server.most_open} of {len(requests)} connections were open at the same "
                "time",
                "Open every connection before waiting for any reply: start one thread per "
                "request (start them all, then join them all).",
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
        result = call.result
        returned_none(result, sent)
        if result == expected:
            return
        later = returned.get("object")
        if isinstance(later, list | tuple) and list(later) != result:
            raise Failure(
                f"it returned {_show_list(result)}, before the threads had stored the replies",
                "join() every thread (start them all, then join them all) before returning "
                "the list.",
                sent,
            )
        if isinstance(result, list) and None in result:
            raise Failure(
                f"it returned {_show_list(result)}: a request without its reply",
                "Each thread must store its reply (replies[i] = ...) before you return: "
                "join() every thread; and if a request failed, let its error be seen rather "
                "than return None in its place.",
                sent,
            )
        if (
            isinstance(result, list)
            and all(isinstance(r, bytes | bytearray) for r in result)
            and sorted(map(bytes, result)) == sorted(expected)
        ):
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
        function=fetch_all,
    )
