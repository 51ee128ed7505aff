"""Load benchmark: do the course's servers keep every byte with 1,000 and 10,000 clients?

    .venv/bin/python bench/bench_load.py          (make bench; not part of make test)

Each server design runs as its own process (python -m helpers.servers DESIGN PORT), so
server and clients use both cores. The clients are one asyncio pool in this process
(helpers/servers/load.py's clients): all connect first, then each sends random-sized
messages with a CRC-32 and checks the echo. One line per design:

    design=<name> clients=<n> messages=<n> bytes=<n> lost_bytes=<n> corrupted=<n> seconds=<s>

Exit status 0 only when every line shows lost_bytes=0 and corrupted=0. Seconds are
wall-clock time on a shared machine: a figure, not a test.

Connecting is paced: at most CONNECTING connections are being opened at any moment (all
stay open: the server holds every client at once before the first message). 10,000
connect() calls in the same instant measure the kernel's listen queue, not the server:
the queue (the servers' backlog, 1,024) overflows, Linux answers with SYN cookies and
drops handshakes (nstat: ListenOverflows, ListenDrops, SyncookiesFailed), and some
clients that think they are connected get a reset at their first message. Seen here with
the thread-per-client server, which accepts the slowest: 14 to 32 MB lost in 3 runs of
10,000 unpaced clients; paced, 0 in every run. Pacing bounds the burst of handshakes, not
the accept queue itself: a server that accepted far slower could still overflow it.
"""

import asyncio
import resource
import sys
import time

from helpers import netlab
from helpers.servers.load import Client, LoadResult, make_payloads

# (design, clients, messages per client): each design at 1,000 and at 10,000 clients at
# once, with fewer messages per client at 10,000 so that each run moves about as many
# bytes (about 120 MB echoed) and stays within a minute.
RUNS = [
    (design, clients, messages)
    for clients, messages in ((1000, 20), (10_000, 2))
    for design in ("threaded", "selector", "asyncio")
]
SEED = 2024
CONNECTING = 512  # connections being opened at once, below the servers' backlog (1,024)
TIMEOUT = 300.0  # seconds per run: the threaded server took 47-87 s here with 10,000 clients
FDS_PER_CLIENT = 1  # one socket per client in this process (the server has its own limit)
SPARE_FDS = 200  # stdin/out, the loop's own fds, libraries


def raise_fd_limit(needed: int) -> bool:
    """Raise RLIMIT_NOFILE (inherited by the server processes) as far as needed, if allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return True
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target <= soft:
        print(
            f"bench: {needed} open files are needed but the limit is {soft} and the hard "
            f"limit {hard}: raise it (ulimit -Hn, or /etc/security/limits.conf)"
        )
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        print(f"bench: cannot raise the open-files limit from {soft} to {target}: {exc}")
        return False
    print(f"bench: raised the open-files limit from {soft} to {target} (hard limit {hard})")
    if target < needed:
        print(
            f"bench: {needed} open files are needed but the hard limit is {hard}: "
            "raise it (ulimit -Hn, or /etc/security/limits.conf) and run again"
        )
        return False
    return True


async def paced_load(port: int, clients: int, messages: int, timeout: float) -> LoadResult:
    """load.load(), with connect() paced (see the module docstring)."""
    pool = [Client(make_payloads(SEED, i, messages)) for i in range(clients)]
    gate = asyncio.Semaphore(CONNECTING)

    async def connect(client: Client) -> None:
        async with gate:
            await client.connect(port)

    start = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(connect(c) for c in pool))  # all open at once, then:
            await asyncio.gather(*(c.exchange() for c in pool))
    except TimeoutError:
        pass  # what did not come back in time counts as lost
    return LoadResult(
        clients=clients,
        messages=clients * messages,
        bytes=sum(c.sent for c in pool),
        lost_bytes=sum(c.sent - c.received for c in pool),
        corrupted=sum(c.corrupted for c in pool),
        seconds=time.perf_counter() - start,
        errors=sorted({c.error for c in pool if c.error}),
    )


def bench(design: str, clients: int, messages: int) -> bool:
    port = netlab.free_port()
    with netlab.start_script(
        "-m", "helpers.servers", design, str(port), listen_port=port
    ) as server:
        result = asyncio.run(paced_load(port, clients, messages, timeout=TIMEOUT))
        alive = server.returncode is None
    print(result.line(design), flush=True)
    for error in result.errors[:5]:
        print(f"  {design}: {error}")
    if not result.ok:  # what the server said (a crash's traceback, a warning), if anything
        said = server.output.strip().splitlines()
        print(
            f"  {design}: the server {'was still running' if alive else 'had exited'}; "
            f"its last lines: {said[-5:]}"
        )
    return result.ok


def main() -> int:
    most = max(clients for _, clients, _ in RUNS)
    if not raise_fd_limit(most * FDS_PER_CLIENT + SPARE_FDS):
        return 1
    results = [bench(design, clients, messages) for design, clients, messages in RUNS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
