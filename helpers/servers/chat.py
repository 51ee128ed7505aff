"""A chat room: threads and one queue; the course's broadcast server (notebook 09).

    srv = netlab.serve(chat_server)          # or: python -m helpers.servers.chat 5000
    # nc 127.0.0.1 5000, type a nickname, then lines; /quit leaves

The protocol, one line each way, UTF-8, ending with b"\\n" (a b"\\r" before it is
dropped, for telnet): a client's first line is its nickname; the server sends
"* NICK joined" to everyone (the newcomer too), each later line TEXT to everyone as
"NICK: TEXT", and "* NICK left" to those who stay when a client sends "/quit", closes,
vanishes (a reset) or is disconnected.

Design. One thread per client reads its lines (``read_client``) and puts events on one
queue: join, say, leave. One thread, the broadcaster, takes them in order and alone owns
the room (the dict of members): no thread changes the dict while another goes through
it, so no lock is needed and "dictionary changed size during iteration" cannot happen
(PITFALLS row 15). Each member has a bounded outbox and a sender thread: the broadcaster
puts a line in every outbox and never waits for a socket. A member whose outbox is full
does not read: it is disconnected (``OUTBOX_LIMIT`` lines), so that one slow or dead
client never stalls the others.

Who closes a socket: the client's reader thread, last, once its sender thread has ended
(closing a socket that another thread still uses could hand its number to a new
socket). Every wait has a bound or is woken by a shutdown.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading

OUTBOX_LIMIT = 256  # lines waiting for one member; one more and it is disconnected
MAX_LINE = 64 * 1024  # bytes of one line; a longer one ends the connection
SENDER_GRACE = 2.0  # seconds a leaving member's sender may take to send what is queued


def lines_of(conn: socket.socket):
    """Yield the lines that arrive on ``conn`` (str, without the line end) until it closes."""
    buffer = b""
    while True:
        data = conn.recv(4096)
        if not data:
            return  # an unfinished last line is dropped: a chat line ends with b"\n"
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line.removesuffix(b"\r").decode("utf-8", "replace")
        if len(buffer) > MAX_LINE:
            return


def send_outbox(conn: socket.socket, outbox: queue.Queue) -> None:
    """A member's sender thread: send its lines until None comes, or the socket fails."""
    try:
        while (data := outbox.get()) is not None:
            conn.sendall(data)
    except OSError:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes its reader thread: the member leaves


def read_client(conn: socket.socket, events: queue.Queue) -> None:
    """A member's reader thread: its nickname, then its lines, as events."""
    outbox: queue.Queue = queue.Queue(OUTBOX_LIMIT)
    sender = threading.Thread(target=send_outbox, args=(conn, outbox), daemon=True)
    sender.start()
    nick = None
    try:
        lines = lines_of(conn)
        nick = next(lines, None)
        if nick is not None:
            events.put(("join", conn, nick, outbox))
            for line in lines:
                if line == "/quit":
                    break
                events.put(("say", conn, nick, line))
    except OSError:
        pass  # a reset: the member leaves like any other
    finally:
        events.put(("leave", conn, nick, outbox))
        sender.join(SENDER_GRACE)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # a sender stuck on a member that never reads
        sender.join(SENDER_GRACE)
        conn.close()


def broadcaster(events: queue.Queue, log: bool = False) -> None:
    """The one thread that owns the room: members join, speak and leave in queue order.
    With ``log``, it prints each line it sends (netlab shows them as the server's)."""
    room: dict[socket.socket, tuple[queue.Queue, str]] = {}  # member -> (outbox, nick)

    def tell_everyone(text: str) -> None:
        if log:
            print(text)
        data = (text + "\n").encode("utf-8")
        for member, (outbox, nick) in list(room.items()):  # a copy: we may remove some
            try:
                outbox.put_nowait(data)
            except queue.Full:  # it does not read: disconnect it, never wait for it
                del room[member]
                if log:
                    print(f"({nick} does not read: disconnected)")
                with contextlib.suppress(OSError):
                    member.shutdown(socket.SHUT_RDWR)  # its reader then sends "leave"

    while True:
        kind, conn, nick, extra = events.get()  # extra: the outbox, or the line said
        if kind == "join":
            room[conn] = (extra, nick)
            tell_everyone(f"* {nick} joined")
        elif kind == "say":
            if conn in room:  # a disconnected member's last lines are not passed on
                tell_everyone(f"{nick}: {extra}")
        else:  # leave
            room.pop(conn, None)
            with contextlib.suppress(queue.Full):  # full: the reader's shutdown ends it
                extra.put_nowait(None)  # its sender ends once it has sent what waits
            if nick is not None:
                tell_everyone(f"* {nick} left")


def chat_server(port: int, log: bool = False) -> None:
    """Serve the chat room on 127.0.0.1:``port`` until netlab stops it; with ``log``, print
    every line sent to the room."""
    events: queue.Queue = queue.Queue()
    broadcast = threading.Thread(target=broadcaster, args=(events, log), daemon=True)
    broadcast.start()
    with socket.create_server(("127.0.0.1", port), backlog=128) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=read_client, args=(conn, events), daemon=True).start()


if __name__ == "__main__":
    import sys

    with contextlib.suppress(KeyboardInterrupt):
        chat_server(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
