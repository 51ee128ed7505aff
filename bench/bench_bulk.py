"""Bulk throughput: the course's fastest path against iperf3, on loopback, in the same run.

    .venv/bin/python bench/bench_bulk.py             (make bench; not part of make test)

The course's side is helpers/servers/bulk.py: its sink runs as its own process
(python -m helpers.servers.bulk PORT) and reads with recv_into into one 1 MiB buffer; the
sender (this process) sendall()s one 1 MiB memoryview for SECONDS, then half-closes and
waits for the sink's byte count, so its clock stops when every byte has arrived (a count
that differs is an error, not a figure). iperf3 runs as a one-off server and a client
(``iperf3 -s -1 -B 127.0.0.1``, ``iperf3 -c 127.0.0.1 -t SECONDS -J``), its rate read
from the client's JSON report (received bytes). Both are measured PAIRS times,
alternately, so that both see the same load on the machine; the medians are printed:

    bulk: iperf3=<MB/s> course=<MB/s> ratio=<course/iperf3>

MB is 10**6 bytes. The goal is a ratio of GOAL or more; the exit status is 0 whenever
the figures were measured (goal met or not: the line says which), 1 when they could not
be (no iperf3, a transfer that lost bytes).
"""

import statistics
import sys

from helpers import netlab
from helpers.servers.bulk import iperf3_mb_per_s, send_for

SECONDS = 1
PAIRS = 3
GOAL = 0.5


def main() -> int:
    port = netlab.free_port()
    iperf3, course = [], []
    try:
        with netlab.start_script("-m", "helpers.servers.bulk", str(port), listen_port=port):
            for _ in range(PAIRS):
                iperf3.append(iperf3_mb_per_s(SECONDS)["mb_per_s"])
                course.append(send_for(port, seconds=SECONDS))
    except FileNotFoundError:
        print("bench: iperf3 is not installed (make system-tools installs it)")
        return 1
    except (OSError, TimeoutError) as exc:
        print(f"bench: a transfer failed: {type(exc).__name__}: {exc}")
        return 1
    reference, ours = statistics.median(iperf3), statistics.median(course)
    ratio = ours / reference
    print(f"bulk: iperf3={reference:.0f} course={ours:.0f} ratio={ratio:.2f}")
    print(
        f"  each run (MB/s): iperf3 {[round(x) for x in iperf3]}, "
        f"course {[round(x) for x in course]}; goal ratio >= {GOAL}: "
        f"{'met' if ratio >= GOAL else 'not met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
