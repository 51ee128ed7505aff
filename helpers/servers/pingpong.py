"""Closed-loop load: many clients, each sending a message and waiting for its echo, again
and again for a fixed time; every round trip timed.

    result = run_pingpong(port, clients=100, seconds=0.5)     # from plain code
    result = await pingpong(port, clients=100, seconds=0.5)   # in Jupyter (a loop runs)
    print(result.mb_per_s, result.percentile(50), result.percentile(99), result.lost_bytes)

Theory of operation. All clients connect first (so the server holds them all at once),
then all start together and run until the deadline: send ``size`` bytes, read exactly
``size`` bytes back, compare, note the round trip (``time.perf_counter_ns``). A client
has one message in flight at a time ("closed loop"): throughput is what the server
sustains at that concurrency, and latency is what each client waits. The clients are one
asyncio loop in this process, the server its own process: on a 2-core machine each gets
a core, and the clients' own cost is part of every figure (the same for every design).

``lost_bytes`` counts bytes sent that did not come back (a reset, the deadline passed
mid-message, a connect that failed); ``corrupted`` counts echoes that differ.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field

CONNECT_TIMEOUT = 30.0  # a server whose backlog overflows makes clients retry their SYN


@dataclass
class PingPongResult:
    clients: int = 0
    exchanges: int = 0
    echoed_bytes: int = 0
    lost_bytes: int = 0
    corrupted: int = 0
    seconds: float = 0.0
    round_trips_ns: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost_bytes == 0 and self.corrupted == 0 and self.exchanges > 0

    @property
    def mb_per_s(self) -> float:
        """Echoed payload (counted once) per second, in MB (10**6 bytes)."""
        return self.echoed_bytes / self.seconds / 1e6 if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """The p-th percentile of the round trips, in microseconds."""
        if not self.round_trips_ns:
            return float("nan")
        if len(self.round_trips_ns) == 1:
            return self.round_trips_ns[0] / 1e3
        cuts = statistics.quantiles(self.round_trips_ns, n=100, method="inclusive")
        if p <= 0:
            return min(self.round_trips_ns) / 1e3
        if p >= 100:
            return max(self.round_trips_ns) / 1e3
        return cuts[int(p) - 1] / 1e3

    def line(self, design: str) -> str:
        return (
            f"design={design} clients={self.clients} exchanges={self.exchanges} "
            f"MB/s={self.mb_per_s:.1f} p50_us={self.percentile(50):.0f} "
            f"p99_us={self.percentile(99):.0f} lost_bytes={self.lost_bytes} "
            f"corrupted={self.corrupted} seconds={self.seconds:.2f}"
        )


class _Client:
    def __init__(self, index: int, size: int):
        # each client's own bytes: an echo that reached the wrong client would show
        self.message = bytes((index + i) % 251 for i in range(size))
        self.reader = self.writer = None
        self.exchanges = 0
        self.lost = 0
        self.corrupted = 0
        self.error: str | None = None
        self.round_trips: list[int] = []

    async def connect(self, port: int) -> None:
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            self.error = f"connect: {type(exc).__name__}: {exc}"
            self.lost += len(self.message)

    async def run(self, start: asyncio.Event, deadline: float) -> None:
        if self.writer is None:
            return
        await start.wait()
        size = len(self.message)
        try:
            # one exchange at least, even for a client that a busy machine starts late
            while self.exchanges == 0 or time.perf_counter() < deadline:
                began = time.perf_counter_ns()
                self.writer.write(self.message)
                await self.writer.drain()
                try:
                    echo = await asyncio.wait_for(
                        self.reader.readexactly(size), max(deadline - time.perf_counter(), 0) + 5
                    )
                except (asyncio.IncompleteReadError, TimeoutError):
                    self.lost += size
                    raise
                self.round_trips.append(time.perf_counter_ns() - began)
                self.exchanges += 1
                if echo != self.message:
                    self.corrupted += 1
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self.error = f"exchange: {type(exc).__name__}: {exc}"
        finally:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


async def pingpong(
    port: int, clients: int, seconds: float = 0.5, size: int = 1024
) -> PingPongResult:
    pool = [_Client(i, size) for i in range(clients)]
    await asyncio.gather(*(c.connect(port) for c in pool))
    start = asyncio.Event()
    began = time.perf_counter()
    deadline = began + seconds
    tasks = [asyncio.ensure_future(c.run(start, deadline)) for c in pool]
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return PingPongResult(
        clients=clients,
        exchanges=sum(c.exchanges for c in pool),
        echoed_bytes=sum(c.exchanges for c in pool) * size,
        lost_bytes=sum(c.lost for c in pool),
        corrupted=sum(c.corrupted for c in pool),
        seconds=elapsed,
        round_trips_ns=[rt for c in pool for rt in c.round_trips],
        errors=sorted({c.error for c in pool if c.error}),
    )


def run_pingpong(port: int, clients: int, seconds: float = 0.5, size: int = 1024) -> PingPongResult:
    """``pingpong()`` from non-async code (a test, a script); in Jupyter use ``await``."""
    return asyncio.run(pingpong(port, clients, seconds, size))
