"""Load benchmark: do the course's servers keep every byte with hundreds of clients?

    .venv/bin/python bench/bench_load.py          (make bench; not part of make test)

Each server design runs as its own process (python -m helpers.servers DESIGN PORT), so
server and clients use both cores. The clients are one asyncio pool in this process
(helpers/servers/load.py): all connect first, then each sends random-sized messages
with a CRC-32 and checks the echo. One line per design:

    design=<name> clients=<n> messages=<n> bytes=<n> lost_bytes=<n> corrupted=<n> seconds=<s>

Exit status 0 only when every line shows lost_bytes=0 and corrupted=0. Seconds are
wall-clock time on a shared machine: a figure, not a test.
"""

import resource
import sys

from helpers import netlab
from helpers.servers.load import run_load

RUNS = [  # (design, clients): thread per client is run with fewer, as threads cost more
    ("selector", 1000),
    ("asyncio", 1000),
    ("threaded", 200),
]
MESSAGES = 20
SEED = 2024
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


def bench(design: str, clients: int) -> bool:
    port = netlab.free_port()
    with netlab.start_script("-m", "helpers.servers", design, str(port), listen_port=port):
        result = run_load(port, clients, MESSAGES, seed=SEED, timeout=90.0)
    print(result.line(design), flush=True)
    for error in result.errors[:5]:
        print(f"  {design}: {error}")
    return result.ok


def main() -> int:
    most = max(clients for _, clients in RUNS)
    if not raise_fd_limit(most * FDS_PER_CLIENT + SPARE_FDS):
        return 1
    results = [bench(design, clients) for design, clients in RUNS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
