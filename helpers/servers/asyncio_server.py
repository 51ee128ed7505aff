"""asyncio streams: the selectors loop of ``selector.py``, written for you.

    srv = netlab.serve(asyncio_echo_server)      # async def: netlab gives it its own loop

Each client is a coroutine that reads like blocking code: ``await reader.read()``
waits for this client only. Two calls matter:
- ``await writer.drain()`` after ``write()``: write() only appends to a buffer; drain()
  waits while that buffer is above its high-water mark. Without it a client that never
  reads makes the server's memory grow without limit (no backpressure).
- ``writer.close()`` then ``await writer.wait_closed()``: the close really happens.
Bounds: a client silent for ``IDLE_TIMEOUT`` seconds is dropped, and so is one that does
not read its echo for as long (drain() and wait_closed() would wait for it for ever,
``abort()`` drops it); per client at most
one read of 64 KiB plus a write buffer of asyncio's 64 KiB high-water mark are held.
Out of file descriptors, asyncio itself pauses accepting for a second and retries; it
reports each failure to the loop's exception handler, a traceback every time (and up to
``backlog`` times per attempt on Python 3.11: cpython#151615), so ours logs the first of
each episode only (``resources.py``). ``serve_forever()`` ends when
netlab's ``srv.stop()`` cancels the loop's tasks.
"""

import asyncio
import contextlib
from asyncio.constants import ACCEPT_RETRY_DELAY  # asyncio's own pause: 1 s

from .resources import AcceptGuard

IDLE_TIMEOUT = 60.0
BACKLOG = 1024
OUT_OF_RESOURCES = "socket.accept() out of system resource"  # asyncio's message for EMFILE


async def echo_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT)
            if not data:  # b'': the client closed its side
                break
            writer.write(data)
            # backpressure: wait while the client is not reading, but not for ever
            await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
    except (TimeoutError, ConnectionError):
        pass  # silent too long, not reading, or reset: drop this client
    except asyncio.CancelledError:
        pass  # the server is stopping: end quietly (see below)
    finally:
        writer.close()  # sends what is still buffered, then the FIN
        # Bounded: for a client that does not read, the buffer never empties and the close
        # never completes; abort() then drops the connection (and the buffer) at once.
        # A stop (CancelledError) that arrives while we close is swallowed too: else the
        # Python 3.11 of this course logs a spurious "Exception in callback" for it.
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(writer.wait_closed(), IDLE_TIMEOUT)
        writer.transport.abort()  # nothing left to do if the close completed


def quiet_about_accept(guard: AcceptGuard):
    """A loop exception handler that logs "out of descriptors" once per episode."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if context.get("message") == OUT_OF_RESOURCES and isinstance(exc, OSError):
            guard.failed(exc)  # asyncio retries accept() itself, a second later
        else:
            loop.default_exception_handler(context)

    return handler


async def asyncio_echo_server(port: int) -> None:
    guard = AcceptGuard("asyncio", pause=ACCEPT_RETRY_DELAY)
    asyncio.get_running_loop().set_exception_handler(quiet_about_accept(guard))

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        guard.accepted()  # a connection came in: an episode of failures is over
        await echo_client(reader, writer)

    server = await asyncio.start_server(client, "127.0.0.1", port, backlog=BACKLOG)
    async with server:
        await server.serve_forever()
