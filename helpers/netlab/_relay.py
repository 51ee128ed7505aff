"""A recording TCP relay: put it between a client and a server to see the wire.

    relay = Relay("127.0.0.1", srv.port)       # listens on relay.port at once
    ...                                        # the client connects to relay.port instead
    relay.wait_closed(1)                       # until connection 1 has ended both ways
    relay.diagram()                            # every chunk, FIN and RST, as a picture

Rules of this file:
- Every byte is forwarded unchanged, in order, to the other side, and as soon as it is
  read: the relay never merges or splits what one ``recv`` returned (it sets TCP_NODELAY
  so that its own sends are not merged either), so the server sees the client's partial
  writes and the client sees the server's.
- Endings are forwarded as they happened. A read that returns ``b''`` is a FIN: the relay
  forwards it with ``shutdown(SHUT_WR)`` and keeps the other direction open (half-close).
  A read that fails with ``ConnectionResetError`` is an RST: the relay records it and
  aborts the other side with SO_LINGER 0, so that the other peer gets an RST too.
- Relay threads never print (see COURSE.md: ipykernel routes output from threads to
  unpredictable cells). They record; the main thread shows. An unexpected exception in a
  relay thread is recorded in ``relay.errors`` and as an ``error`` event.
- Memory is bounded whatever the traffic: a chunk event keeps at most ``preview`` bytes,
  at most ``max_chunks`` chunk events are kept per connection, and the chunks after that
  are only counted (exact totals per direction are always kept).

Why threads, two per connection, and not one selectors loop: each direction is a small
blocking pump, ``recv_into -> record -> sendall``, that reads like the code learners
write. Blocking ``sendall`` is the backpressure: a pump waits while its receiver is slow,
so the relay holds at most one buffer per direction and needs no write queues. The
socket calls release the GIL, so two pumps move data as fast as a selectors loop
would, and 100 connections are 200 threads, which is nothing for the OS. A half-close
is simply one pump ending while the other goes on.

Why ``os.splice`` on Linux (``_SpliceMover``): a relay adds a hop, and copying every
byte into Python and out again costs as much CPU as the client and the server spend
together, which on a small machine brings a relayed transfer down to half the speed of
a direct one. On Linux the pump peeks at the head of what has arrived (for the
preview) and lets the kernel move the bytes to the other socket through a pipe. The
chunks, FINs and RSTs recorded are the same; ``splice=False`` forces the copy.

Why the pumps have no timeout: a relay in a notebook must keep an idle connection
open while the learner reads the next cell. They are bounded another way: ``stop()``
wakes every blocked call by shutting the sockets down, and then joins the threads
with a timeout. The accept loop waits on a selector that ``stop()`` wakes through a
socket pair. Waiting helpers (``wait_closed``, ``wait_idle``) wait on a condition
variable with a timeout and raise ``TimeoutError`` with the reason.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import threading
import time
import traceback

from ._addresses import format_address
from ._sockets import arm_reset
from ._wire import CLIENT_TO_SERVER, DIRECTIONS, SERVER_TO_CLIENT, Connection, Event

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

CONNECT_TIMEOUT = 5.0
STOP_TIMEOUT = 2.0
BUFSIZE = 256 * 1024
MAX_CHUNKS = 1000

_CAN_SPLICE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
_TCP_CLOSE = 7  # tcpi_state after an RST (Linux include/net/tcp_states.h)


def _other(direction: str) -> str:
    return SERVER_TO_CLIENT if direction == CLIENT_TO_SERVER else CLIENT_TO_SERVER


class _Record:
    """The mutable record of one connection; guarded by the relay's condition."""

    def __init__(self, number: int, client_sock, client_address, server_address, max_chunks):
        self.number = number
        self.client_sock = client_sock
        self.server_sock = None
        self.client = tuple(client_address[:2])
        self.server = tuple(server_address[:2])
        self.upstream = None
        self.t0 = time.perf_counter()
        self.events: list[Event] = []
        self.kept_chunks = 0
        self.max_chunks = max_chunks
        self.omitted = None  # the open run of omitted chunks: [count, size, {directions}]
        self.bytes = dict.fromkeys(DIRECTIONS, 0)
        self.chunks = dict.fromkeys(DIRECTIONS, 0)
        self.ended = dict.fromkeys(DIRECTIONS)
        self.done = set()  # directions whose pump has finished
        self.aborted = set()  # sockets the relay aborted (a reader of one sees b'')
        self.write_shut = set()  # sockets the relay sent a FIN on
        self.closed = False
        self.threads: list[threading.Thread] = []

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def add(self, kind: str, direction=None, **details) -> None:
        self._close_omitted_run()
        self.events.append(Event(kind, self.now(), direction, **details))

    def add_chunk(self, direction: str, size: int, head: bytes) -> None:
        self.bytes[direction] += size
        self.chunks[direction] += 1
        if self.kept_chunks < self.max_chunks:
            self.kept_chunks += 1
            self.events.append(Event("data", self.now(), direction, size=size, preview=head))
            return
        if self.omitted is None:
            self.omitted = [0, 0, set(), self.now()]
        self.omitted[0] += 1
        self.omitted[1] += size
        self.omitted[2].add(direction)

    def _close_omitted_run(self) -> None:
        if self.omitted is not None:
            self.events.append(self._omitted_event())
            self.omitted = None

    def _omitted_event(self) -> Event:
        count, size, directions, when = self.omitted
        direction = next(iter(directions)) if len(directions) == 1 else None
        return Event("omitted", when, direction, size=size, count=count)

    def snapshot(self) -> Connection:
        events = list(self.events)
        if self.omitted is not None:
            events.append(self._omitted_event())
        return Connection(
            number=self.number,
            client=self.client,
            server=self.server,
            upstream=self.upstream,
            events=tuple(events),
            bytes=dict(self.bytes),
            chunks=dict(self.chunks),
            ended=dict(self.ended),
            closed=self.closed,
        )


def _abort(sock) -> None:
    """Make ``close()`` send an RST, and wake a thread blocked reading ``sock``.

    shutdown(SHUT_RD) sends nothing on the wire (SHUT_WR would send a FIN before the
    RST), but it makes a blocked ``recv`` return ``b''``: closing a socket that another
    thread is blocked on would not wake that thread, and would send nothing.
    """
    if sock is None:  # the relay closed it already
        return
    for action in (
        lambda: arm_reset(sock),
        lambda: sock.shutdown(socket.SHUT_RD),
    ):
        try:
            action()
        except OSError:
            pass


def _reset_by_peer(sock) -> bool:
    """True when ``sock`` was reset, although ``recv`` returned ``b''``.

    That happens when the other pump's ``send`` on the same socket consumed the error.
    On Linux the socket's TCP state tells (CLOSE after an RST); elsewhere assume a FIN.
    """
    if not hasattr(socket, "TCP_INFO"):
        return False
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    except OSError:
        return False
    return bool(info) and info[0] == _TCP_CLOSE


class _CopyMover:
    """Moves one chunk: ``recv_into`` a buffer, then ``sendall`` it. Works everywhere."""

    def __init__(self, bufsize: int, preview: int):
        self.buffer = bytearray(bufsize)
        self.view = memoryview(self.buffer)
        self.preview = preview
        self.size = 0

    def read(self, src) -> tuple[int, bytes]:
        """Wait for what has arrived (at most bufsize); return its size (0: FIN) and head."""
        self.size = src.recv_into(self.buffer)
        return self.size, bytes(self.view[: min(self.size, self.preview)])

    def write(self, dst) -> None:
        dst.sendall(self.view[: self.size])

    def close(self) -> None:
        pass  # the buffer goes with the pump


class _SpliceMover:
    """Moves one chunk the way ``_CopyMover`` does, without copying it through Python.

    Linux only. ``recv(MSG_PEEK)`` waits for data exactly as ``recv`` would, and returns
    the head for the preview without consuming it (and ``b''`` on a FIN, an exception
    on an RST); ``os.splice`` then moves what has arrived (at most the pipe's size) from
    the socket into a pipe and from the pipe to the other socket, inside the kernel.
    """

    def __init__(self, bufsize: int, preview: int):
        self.pipe_r, self.pipe_w = os.pipe()
        try:
            fcntl.fcntl(self.pipe_w, fcntl.F_SETPIPE_SZ, bufsize)
        except OSError:
            pass  # above /proc/sys/fs/pipe-max-size: keep the default size
        self.capacity = fcntl.fcntl(self.pipe_w, fcntl.F_GETPIPE_SZ)
        self.preview = preview
        self.size = 0

    def read(self, src) -> tuple[int, bytes]:
        wanted = max(1, self.preview)
        head = src.recv(wanted, socket.MSG_PEEK)
        if not head:
            self.size = 0
            return 0, b""
        # Less than ``wanted`` is all that had arrived: move exactly that, so that the
        # preview is the chunk's true head (more may have arrived since the peek).
        limit = self.capacity if len(head) == wanted else len(head)
        self.size = os.splice(src.fileno(), self.pipe_w, limit)
        return self.size, head[: min(self.size, self.preview)]

    def write(self, dst) -> None:
        left = self.size
        while left:
            left -= os.splice(self.pipe_r, dst.fileno(), left)

    def close(self) -> None:
        os.close(self.pipe_r)
        os.close(self.pipe_w)


def _new_mover(bufsize: int, preview: int, splice: bool):
    if splice:
        try:
            return _SpliceMover(bufsize, preview)
        except OSError:
            pass  # out of file descriptors for the pipe, say: copying works as well
    return _CopyMover(bufsize, preview)


class Relay:
    """A TCP relay on ``host:port`` (a free port by default) to ``target_host:target_port``.

    Connections are numbered 1, 2, ... in the order the relay accepts them. Read what it
    recorded with ``connections`` (snapshots), wait with ``wait_closed(n)`` or
    ``wait_idle()``, draw it with ``diagram()``, forget it with ``clear()``, and end it
    with ``stop()`` or a ``with`` block.

        with Relay("127.0.0.1", 5000) as relay:
            ...  # connect to ("127.0.0.1", relay.port)
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        host: str = "127.0.0.1",
        port: int = 0,
        preview: int = 64,
        *,
        bufsize: int = BUFSIZE,
        max_chunks: int = MAX_CHUNKS,
        connect_timeout: float = CONNECT_TIMEOUT,
        splice: bool | None = None,
    ):
        self.target = (target_host, int(target_port))
        self.preview = max(0, int(preview))
        self.bufsize = int(bufsize)
        self.max_chunks = int(max_chunks)
        self.connect_timeout = connect_timeout
        self.splice = _CAN_SPLICE if splice is None else bool(splice) and _CAN_SPLICE
        self.errors: list[str] = []

        self._changed = threading.Condition()
        self._records: dict[int, _Record] = {}
        self._next_number = 1
        self._stopping = False

        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self._listener = socket.create_server((host, port), family=family, backlog=128)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"the relay cannot listen on {format_address((host, port))}: {exc.strerror}. "
                "Pick another port, or port=0 for a free one.",
            ) from exc
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._wake_r, self._wake_w = socket.socketpair()
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"netlab-relay-{self.port}-accept", daemon=True
        )
        self._accepter.start()

    # --- public API ------------------------------------------------------------------

    @property
    def address(self) -> tuple:
        return (self.host, self.port)

    @property
    def connections(self) -> list[Connection]:
        """Snapshots of the recorded connections, in accept order."""
        with self._changed:
            return [record.snapshot() for record in self._records.values()]

    def connection(self, number: int) -> Connection:
        """The snapshot of connection ``number`` (1 is the first accepted)."""
        with self._changed:
            record = self._records.get(number)
            if record is None:
                known = ", ".join(map(str, self._records)) or "none yet"
                raise KeyError(f"the relay has no connection {number} (recorded: {known})")
            return record.snapshot()

    def wait_closed(self, conn_count: int = 1, timeout: float = 5.0) -> list[Connection]:
        """Wait until ``conn_count`` connections were accepted (since ``clear()``) and all ended.

        Returns the snapshots. Raises ``TimeoutError`` after ``timeout`` seconds, saying
        which connection is still open and in which direction.
        """

        def done() -> bool:
            return len(self._records) >= conn_count and all(
                r.closed for r in self._records.values()
            )

        with self._changed:
            if not self._changed.wait_for(done, timeout):
                raise TimeoutError(self._not_closed_message(conn_count, timeout))
            return [record.snapshot() for record in self._records.values()]

    def wait_idle(self, timeout: float = 5.0) -> list[Connection]:
        """Wait until every connection recorded so far has ended both ways.

        It cannot see connections the relay has not accepted yet: right after a client
        connected, use ``wait_closed(n)`` with the number of connections you expect.
        """
        return self.wait_closed(0, timeout)

    def clear(self) -> None:
        """Forget the connections that have ended; numbering goes on after those still open."""
        with self._changed:
            self._records = {n: r for n, r in self._records.items() if not r.closed}
            self._next_number = max(self._records, default=0) + 1
            self.errors.clear()
            self._changed.notify_all()

    def diagram(self, number: int | None = None, **options):
        """A sequence diagram of connection ``number``, or of all (see ``_diagram.py``)."""
        from ._diagram import sequence_diagram

        what = self.connections if number is None else self.connection(number)
        return sequence_diagram(what, **options)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close the listener and every connection; idempotent; returns within ``timeout``."""
        with self._changed:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
                records = list(self._records.values())
        if already:
            return
        deadline = time.monotonic() + timeout
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._accepter.join(max(0.0, deadline - time.monotonic()))
        for record in records:
            for sock in (record.client_sock, record.server_sock):
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        for record in records:
            # the connection thread starts the server->client pump: join it first
            for thread in list(record.threads):
                if thread.ident is not None:
                    thread.join(max(0.0, deadline - time.monotonic()))
        with self._changed:
            for record in self._records.values():
                if not record.closed:  # a thread we could not join: close for it
                    self._close_record(record, note="relay stopped")
            self._changed.notify_all()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    close = stop

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self._stopping else "running"
        with self._changed:
            count = len(self._records)
        return (
            f"<Relay {format_address(self.address)} -> {format_address(self.target)}, "
            f"{state}, {count} connection{'s' if count != 1 else ''} recorded>"
        )

    # --- threads -----------------------------------------------------------------------

    def _record_error(self, record: _Record | None, where: str) -> None:
        text = traceback.format_exc()
        with self._changed:
            self.errors.append(f"{where}:\n{text}")
            if record is not None:
                record.add("error", note=f"{where}: {sys.exc_info()[1]!r}")
            self._changed.notify_all()

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r or self._stopping:
                        return
                    try:
                        client, address = self._listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        continue  # the client left before we accepted it
                    except OSError:
                        self._record_error(None, "accept")
                        # out of file descriptors, say: back off instead of spinning
                        threading.Event().wait(0.05)
                        continue
                    self._start_connection(client, address)
        except Exception:
            self._record_error(None, "accept loop")
        finally:
            selector.close()

    def _start_connection(self, client, address) -> None:
        client.setblocking(True)
        with self._changed:
            if self._stopping:
                client.close()
                return
            number = self._next_number
            self._next_number += 1
            record = _Record(number, client, address, self.target, self.max_chunks)
            self._records[number] = record
            thread = threading.Thread(
                target=self._run_connection,
                args=(record,),
                name=f"netlab-relay-{self.port}-conn{number}",
                daemon=True,
            )
            record.threads.append(thread)
            self._changed.notify_all()
        thread.start()

    def _run_connection(self, record: _Record) -> None:
        try:
            self._connect_and_pump(record)
        except Exception:  # a bug: record it, never let the thread print it
            self._record_error(record, f"connection {record.number}")
            with self._changed:
                record.done.update(DIRECTIONS)
                self._close_record(record, note="relay error")

    def _connect_and_pump(self, record: _Record) -> None:
        """Connect to the target, then pump client->server here and server->client in a thread."""
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError as exc:
            with self._changed:
                record.add("refused", note=f"{type(exc).__name__}: {exc.strerror or exc}")
                record.ended.update(dict.fromkeys(DIRECTIONS, "RST"))
                record.done.update(DIRECTIONS)
            _abort(record.client_sock)  # the client gets an RST, the nearest to "refused"
            self._close_record_locked(record, note="")
            return
        upstream.settimeout(None)
        for sock in (record.client_sock, upstream):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        with self._changed:
            record.server_sock = upstream
            record.upstream = tuple(upstream.getsockname()[:2])
            record.t0 = time.perf_counter()
            record.events.append(Event("open", 0.0))
            stopping = self._stopping
            if not stopping:
                backward = threading.Thread(
                    target=self._pump,
                    args=(record, SERVER_TO_CLIENT, upstream, record.client_sock),
                    name=f"netlab-relay-{self.port}-conn{record.number}-s2c",
                    daemon=True,
                )
                record.threads.append(backward)
            self._changed.notify_all()
        if stopping:
            with self._changed:
                record.done.update(DIRECTIONS)
                if record.closed:  # stop() gave up waiting and closed the record already
                    upstream.close()
                self._close_record(record, note="relay stopped")
            return
        backward.start()
        self._pump(record, CLIENT_TO_SERVER, record.client_sock, upstream)

    def _pump(self, record: _Record, direction: str, src, dst) -> None:
        """Move bytes from ``src`` to ``dst`` until ``src`` ends, recording each chunk."""
        mover = _new_mover(self.bufsize, self.preview, self.splice)
        try:
            while True:
                try:
                    n, head = mover.read(src)
                except (ConnectionResetError, ConnectionAbortedError, TimeoutError) as exc:
                    if not self._quietly_ending(record, src):
                        self._reset(record, direction, abort=dst, note=type(exc).__name__)
                    return
                except OSError:
                    if self._quietly_ending(record, src):
                        return
                    raise
                if n == 0:
                    if self._quietly_ending(record, src):
                        return
                    with self._changed:
                        reset_already = record.ended[direction] == "RST"
                    if reset_already:
                        return
                    if src not in record.write_shut and _reset_by_peer(src):
                        self._reset(record, direction, abort=dst)
                    else:
                        self._fin(record, direction, dst)
                    return
                with self._changed:
                    record.add_chunk(direction, n, head)
                try:
                    mover.write(dst)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as exc:
                    if not self._quietly_ending(record, dst):
                        # the receiver is gone: its side reset, so abort the sender's side
                        self._reset(record, _other(direction), abort=src, note=type(exc).__name__)
                    return
                except OSError:
                    if self._quietly_ending(record, dst):
                        return
                    raise
        except Exception:
            self._record_error(record, f"connection {record.number} {direction}")
            _abort(record.client_sock)
            if record.server_sock is not None:
                _abort(record.server_sock)
        finally:
            mover.close()
            with self._changed:
                record.done.add(direction)
                last = len(record.done) == 2
            if last:
                self._close_record_locked(record, note="relay stopped" if self._stopping else "")

    def _quietly_ending(self, record: _Record, sock) -> bool:
        """True when the relay itself woke this call (stop, or an abort it forwarded)."""
        with self._changed:
            if self._stopping:
                for d in DIRECTIONS:
                    if record.ended[d] is None and d not in record.done:
                        record.ended[d] = "stopped"
                return True
            return sock in record.aborted

    def _fin(self, record: _Record, direction: str, dst) -> None:
        with self._changed:
            record.add("fin", direction)
            record.ended[direction] = "FIN"
            record.write_shut.add(dst)
            self._changed.notify_all()
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the other side is gone already; its own pump records how

    def _reset(self, record: _Record, direction: str, abort, note: str = "") -> None:
        """The sender of ``direction`` reset: record it once, pass the RST on to ``abort``."""
        with self._changed:
            if record.ended[direction] != "RST":
                record.add("reset", direction, note=note)
                record.ended[direction] = "RST"
            other = _other(direction)
            if record.ended[other] is None:
                record.ended[other] = "RST"  # that direction dies with the connection
            record.aborted.add(abort)
            self._changed.notify_all()
        _abort(abort)

    def _close_record(self, record: _Record, note: str) -> None:
        """Close both sockets and record the end; called with the condition held."""
        if record.closed:
            return
        for sock in (record.client_sock, record.server_sock):
            if sock is not None:
                sock.close()
        record.add("close", note=note)
        record.closed = True
        record.client_sock = record.server_sock = None
        record.aborted.clear()
        record.write_shut.clear()
        self._changed.notify_all()

    def _close_record_locked(self, record: _Record, note: str) -> None:
        with self._changed:
            self._close_record(record, note)

    def _not_closed_message(self, conn_count: int, timeout: float) -> str:
        records = list(self._records.values())
        if len(records) < conn_count:
            return (
                f"after {timeout} s the relay on port {self.port} has accepted "
                f"{len(records)} connection(s), not {conn_count}: did the client connect "
                f"to port {self.port} (the relay) rather than {self.target[1]} (the server)?"
            )
        lines = []
        for record in records:
            if record.closed:
                continue
            open_directions = [d for d in DIRECTIONS if record.ended[d] is None]
            lines.append(
                f"connection {record.number} is still open ({', '.join(open_directions)} not ended)"
            )
        return (
            f"after {timeout} s: "
            + "; ".join(lines)
            + ". A direction ends when its sender closes or shuts down its socket: "
            "did both the client and the server close theirs?"
        )
