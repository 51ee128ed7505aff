"""Reference solutions of notebook 09 (a chat room)."""

import asyncio
import socket
import threading


def read_lines(sock):
    """Yield each line that arrives on sock, as str, without its line end."""
    buffer = b""
    while True:
        data = sock.recv(4096)
        if not data:  # the peer closed: what is left is the last line
            break
        buffer += data
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            yield line.removesuffix(b"\r").decode("utf-8")  # whole lines only
    if buffer:
        yield buffer.removesuffix(b"\r").decode("utf-8")


def chat_server(port):
    """A chat room: a client's first line is its nickname, each later line goes to all."""
    clients = {}  # socket -> nickname
    lock = threading.Lock()  # held while the dict is read or changed

    def broadcast(text):
        data = (text + "\n").encode("utf-8")
        with lock:  # nobody joins or leaves while we go through the dict
            for member in clients:
                try:
                    member.sendall(data)
                except OSError:
                    pass  # it has gone: its own thread removes it

    def serve_client(conn):
        nick = None
        with conn:
            try:
                lines = read_lines(conn)
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
            except (OSError, UnicodeDecodeError):
                pass  # reset or garbage: this client leaves, the room goes on
            finally:
                with lock:
                    clients.pop(conn, None)
                if nick is not None:
                    broadcast(f"* {nick} left")

    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve_client, args=(conn,), daemon=True).start()


OUTBOX_LIMIT = 256 * 1024  # bytes waiting for one client; beyond that it is disconnected


async def fair_chat_server(port):
    """The chat room, where a client that does not read is disconnected, not waited for."""
    writers = {}  # StreamWriter -> nickname

    def broadcast(text):
        data = (text + "\n").encode("utf-8")
        for writer in list(writers):  # a copy: we may remove members on the way
            if writer.transport.get_write_buffer_size() > OUTBOX_LIMIT:
                del writers[writer]
                writer.transport.abort()  # close now, dropping what it never read
            else:
                writer.write(data)  # never waits: asyncio buffers it

    async def handle(reader, writer):
        nick = None
        try:
            first = await reader.readline()
            if not first.endswith(b"\n"):
                return
            nick = first.rstrip(b"\r\n").decode("utf-8")
            writers[writer] = nick
            broadcast(f"* {nick} joined")
            while line := await reader.readline():
                text = line.rstrip(b"\r\n").decode("utf-8")
                if text == "/quit":
                    break
                broadcast(f"{nick}: {text}")
        except (OSError, UnicodeDecodeError, ValueError):
            pass  # reset, garbage or a line over 64 KiB: this client leaves
        finally:
            writers.pop(writer, None)
            writer.transport.abort()
            if nick is not None:
                broadcast(f"* {nick} left")

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()
