"""How much does the recording relay cost? 100 MB direct on loopback, then through it.

    .venv/bin/python bench/bench_relay.py            # 7 pairs; exits 1 if the median < FLOOR
    .venv/bin/python bench/bench_relay.py --mb 20 --pairs 3

The sender and the receiving sink run in this process; the relay runs in a child
process, so that its peak memory (``ru_maxrss`` of the child) is the relay's alone and
shows that recording a large transfer keeps memory bounded. The child also reports
the byte count it recorded, which must be exact. Every wait has a timeout.

The figure is the median, over ``--pairs`` pairs, of relayed / direct throughput, each
pair a direct and a relayed transfer back to back (which goes first alternates), so
that both of a pair see the same load on the machine. All ratios are printed. The goal
is GOAL (relayed at 0.8 x direct or better); the exit status only says whether the
median is above FLOOR, which noise does not cross (see below).
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUFSIZE = 256 * 1024
TIMEOUT = 60.0
GOAL = 0.8
# FLOOR comes from measurements on the course's 2-core development machine (Debian 12,
# loopback at 1,200-4,000 MB/s direct), 48 runs of 7 pairs of 100 MB: with the machine
# busy only with other people's work the medians were 0.37-0.58 (single pairs
# 0.20-1.09; --copy 0.49-0.62); with 2 CPU-bound processes added, 0.37-1.07; with 3
# (the 2 cores oversubscribed), 0.22-0.59, single pairs down to 0.16. Noise does not
# take the median below 0.2, so FLOOR = 0.15: failing means the relay became about 3x
# slower than it is, not a busy machine. The goal (0.8) is not met on that machine:
# the relay, its client and the sink share 2 cores.
FLOOR = 0.15


def peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes vs KiB


def recv_exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


class Sink:
    """A server that reads everything, then answers with the byte count (8 bytes)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.error = None
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        buffer = bytearray(BUFSIZE)
        try:
            while True:
                conn, _ = self.listener.accept()
                if self.stopping:
                    conn.close()
                    return
                with conn:
                    conn.settimeout(TIMEOUT)
                    total = 0
                    while n := conn.recv_into(buffer):
                        total += n
                    conn.sendall(total.to_bytes(8, "big"))
        except Exception as exc:  # reported by the main thread
            self.error = exc

    def stop(self):
        # closing a listener does not wake a thread blocked in accept(): connect to it
        self.stopping = True
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT):
            self.thread.join(TIMEOUT)
        self.listener.close()


def transfer(port: int, total: int) -> float:
    """Send ``total`` bytes to ``port``; return MB/s, counting until the sink confirmed."""
    block = memoryview(bytes(range(256)) * (BUFSIZE // 256))
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        left = total
        while left:
            piece = block[: min(left, len(block))]
            sock.sendall(piece)
            left -= len(piece)
        sock.shutdown(socket.SHUT_WR)
        received = int.from_bytes(recv_exactly(sock, 8), "big")
    elapsed = time.perf_counter() - start
    if received != total:
        raise SystemExit(f"bench: the sink received {received} bytes, not {total}")
    return total / elapsed / 1e6


def read_line(proc, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        proc.kill()
        raise SystemExit(f"bench: the relay process said nothing within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"bench: the relay process ended:\n{proc.stderr.read()}")
    return line.strip()


def child(target_port: int, splice: bool) -> None:
    """Run a relay to ``target_port`` until stdin says stop; report what it recorded."""
    sys.path.insert(0, ROOT)
    from helpers.netlab._relay import CLIENT_TO_SERVER, Relay

    before = peak_rss_mb()
    with Relay("127.0.0.1", target_port, splice=splice) as relay:
        print(f"port {relay.port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stop":
                break
            count = int(line)
            connections = relay.wait_closed(count, timeout=TIMEOUT)
            recorded = sum(c.bytes[CLIENT_TO_SERVER] for c in connections)
            print(f"recorded {recorded}", flush=True)
        errors = len(relay.errors)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print(f"rss {before:.1f} {peak_rss_mb():.1f} errors {errors} cpu {cpu:.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="megabytes per transfer")
    parser.add_argument(
        "--pairs", type=int, default=7, help="direct + relayed pairs, the median ratio kept"
    )
    parser.add_argument(
        "--copy", action="store_true", help="make the relay copy through Python, no splice"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, splice=not args.copy)
        return 0

    total = args.mb * 1_000_000
    sink = Sink()
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--child", str(sink.port)]
        + (["--copy"] if args.copy else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        relay_port = int(read_line(proc, TIMEOUT).split()[1])
        direct, relayed = [], []
        for run in range(1, args.pairs + 1):
            if run % 2:  # direct first, then relayed first: neither always warms the other
                direct.append(transfer(sink.port, total))
                relayed.append(transfer(relay_port, total))
            else:
                relayed.append(transfer(relay_port, total))
                direct.append(transfer(sink.port, total))
            proc.stdin.write(f"{run}\n")
            proc.stdin.flush()
            recorded = int(read_line(proc, TIMEOUT).split()[1])
            if recorded != total * run:
                raise SystemExit(f"bench: the relay recorded {recorded} bytes, not {total * run}")
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        _, rss_before, rss_after, _, errors, _, cpu = read_line(proc, TIMEOUT).split()
        proc.wait(TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        sink.stop()
    if sink.error:
        raise SystemExit(f"bench: the sink failed: {sink.error!r}")
    ratios = [r / d for d, r in zip(direct, relayed, strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"relay: direct={statistics.median(direct):.0f} MB/s "
        f"({min(direct):.0f}-{max(direct):.0f}) relayed={statistics.median(relayed):.0f} MB/s "
        f"({min(relayed):.0f}-{max(relayed):.0f}) peak_rss={float(rss_after):.0f} MB "
        f"(relay process: {float(rss_before):.0f} MB before relaying {args.pairs} x "
        f"{args.mb} MB, {float(cpu):.2f} s CPU, {'copy' if args.copy else 'splice'}; "
        f"relay errors: {errors})"
    )
    print(f"relay: ratios relayed/direct, pair by pair: {' '.join(f'{r:.2f}' for r in ratios)}")
    ok = ratio >= FLOOR and errors == "0"
    print(
        f"relay: median ratio={ratio:.2f} over {args.pairs} pairs; goal >= {GOAL}x direct: "
        f"{'met' if ratio >= GOAL else 'not met'}; floor {FLOOR}: "
        f"{'above' if ratio >= FLOOR else 'BELOW, FAIL'}"
        + ("" if errors == "0" else f"; FAIL: {errors} relay errors")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
