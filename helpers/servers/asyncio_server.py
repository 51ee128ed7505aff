"""asyncio streams: the selectors loop of ``selector.py``, written for you.

    srv = netlab.serve(asyncio_echo_server)      # async def: netlab gives it its own loop

Each client is a coroutine that reads like blocking code: ``await reader.read()``
waits for this client only. Two calls matter:
- ``await writer.drain()`` after ``write()``: write() only appends to a buffer; drain()
  waits while that buffer is above its high-water mark. Without it a client that never
  reads makes the server's memory grow without limit (no backpressure).
- ``writer.close()`` then ``await writer.wait_closed()``: the close really happens.
Bounds: a client silent for ``IDLE_TIMEOUT`` seconds is dropped; ``serve_forever()``
ends when netlab's ``srv.stop()`` cancels the loop's tasks.
"""

import asyncio
import contextlib

IDLE_TIMEOUT = 60.0
BACKLOG = 1024


async def echo_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT)
            if not data:  # b'': the client closed its side
                break
            writer.write(data)
            await writer.drain()  # backpressure: wait while the client is not reading
    except (TimeoutError, ConnectionError):
        pass  # silent too long, or reset: drop this client
    except asyncio.CancelledError:
        pass  # the server is stopping: end quietly (see below)
    finally:
        writer.close()
        # Python 3.11 logs a spurious "Exception in callback" when a client task ends
        # cancelled (fixed in 3.12), so a stop that arrives while we close is swallowed too.
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await writer.wait_closed()


async def asyncio_echo_server(port: int) -> None:
    server = await asyncio.start_server(echo_client, "127.0.0.1", port, backlog=BACKLOG)
    async with server:
        await server.serve_forever()
