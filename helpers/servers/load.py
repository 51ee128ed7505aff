"""Many clients at once, each checking that every byte it sent came back intact.

    result = run_load(port, clients=100, messages=5, seed=1)   # from plain (non-async) code
    print(result.line("selector")); assert result.ok

Theory of operation. All clients connect first (phase 1), so the server really holds
them all at the same time; then every client sends its messages and reads the echoes
concurrently (phase 2), in one asyncio loop. Each client writes and reads in two tasks:
an echo server stops reading from a client that does not read its echoes (backpressure),
so a client that wrote everything before reading could wait forever. After its last
message a client half-closes (write_eof) and reads until the server closes too.

Counting: ``lost_bytes`` is what was sent and did not come back as whole messages by
the end (connect failed, reset, the deadline passed, or the stream fell out of step);
``corrupted`` counts echoed messages whose length, CRC or content differs, plus stray
bytes after the last message. Sizes are random but
seeded: the same seed sends the same bytes.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from .framing import HEADER, is_intact, pack_message, unpack_header

MAX_SIZE_BITS = 16  # message sizes are log-uniform between 1 byte and 64 KiB


@dataclass
class LoadResult:
    clients: int = 0
    messages: int = 0
    bytes: int = 0
    lost_bytes: int = 0
    corrupted: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost_bytes == 0 and self.corrupted == 0 and self.messages > 0

    def line(self, design: str) -> str:
        return (
            f"design={design} clients={self.clients} messages={self.messages} "
            f"bytes={self.bytes} lost_bytes={self.lost_bytes} corrupted={self.corrupted} "
            f"seconds={self.seconds:.2f}"
        )


def make_payloads(seed: int, client: int, messages: int) -> list[bytes]:
    rng = random.Random(seed * 1_000_003 + client)
    return [rng.randbytes(int(2 ** rng.uniform(0, MAX_SIZE_BITS))) for _ in range(messages)]


class Client:
    def __init__(self, payloads: list[bytes]):
        self.frames = [pack_message(p) for p in payloads]
        self.payloads = payloads
        self.sent = sum(len(f) for f in self.frames)
        self.received = 0  # bytes of whole messages that came back (intact or not)
        self.corrupted = 0
        self.error: str | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self, port: int) -> None:
        try:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            self.error = f"connect: {type(exc).__name__}: {exc}"

    async def _send(self) -> None:
        for frame in self.frames:
            self.writer.write(frame)
            await self.writer.drain()
        self.writer.write_eof()  # half-close: "I am done sending"; we still read

    async def _receive(self) -> None:
        for expected in self.payloads:
            length, crc = unpack_header(await self.reader.readexactly(HEADER.size))
            if length != len(expected):
                self.corrupted += 1  # the stream is out of step: nothing after is trustworthy
                raise ConnectionError(f"length {length} where {len(expected)} was sent")
            payload = await self.reader.readexactly(length)
            self.received += HEADER.size + length
            if not (is_intact(payload, crc) and payload == expected):
                self.corrupted += 1
        if await self.reader.read(1):
            self.corrupted += 1  # bytes nobody sent

    async def exchange(self) -> None:
        if self.writer is None:
            return
        try:
            await asyncio.gather(self._send(), self._receive())
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.error = f"exchange: {type(exc).__name__}: {exc}"
        finally:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


async def load(
    port: int, clients: int, messages: int, seed: int = 0, timeout: float = 60.0
) -> LoadResult:
    pool = [Client(make_payloads(seed, i, messages)) for i in range(clients)]
    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(c.connect(port) for c in pool))
            await asyncio.gather(*(c.exchange() for c in pool))
    except TimeoutError:
        pass  # what did not come back in time counts as lost
    result = LoadResult(
        clients=clients,
        messages=clients * messages,
        bytes=sum(c.sent for c in pool),
        lost_bytes=sum(c.sent - c.received for c in pool),
        corrupted=sum(c.corrupted for c in pool),
        seconds=time.perf_counter() - start,
        errors=sorted({c.error for c in pool if c.error}),
    )
    if result.lost_bytes and time.perf_counter() - start >= timeout:
        result.errors.append(f"deadline of {timeout:g} s passed")
    return result


def run_load(
    port: int, clients: int, messages: int, seed: int = 0, timeout: float = 60.0
) -> LoadResult:
    """``load()`` from non-async code (a test, a script); in Jupyter use ``await load(...)``."""
    return asyncio.run(load(port, clients, messages, seed, timeout))
