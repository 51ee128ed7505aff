"""How much does the recording relay cost? 100 MB direct on loopback, then through it.

    .venv/bin/python bench/bench_relay.py            # prints one line, exits 1 if ratio < 0.5
    .venv/bin/python bench/bench_relay.py --mb 20 --repeat 1

The sender and the receiving sink run in this process; the relay runs in a child
process, so that its peak memory (``ru_maxrss`` of the child) is the relay's alone and
shows that recording a large transfer keeps memory bounded. The child also reports
the byte count it recorded, which must be exact. Each figure is the best of
``--repeat`` runs, direct and relayed runs alternating. Every wait has a timeout.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUFSIZE = 256 * 1024
TIMEOUT = 60.0


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
    parser.add_argument("--repeat", type=int, default=5, help="runs of each kind, best kept")
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
        for run in range(1, args.repeat + 1):
            direct.append(transfer(sink.port, total))
            relayed.append(transfer(relay_port, total))
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
    best_direct, best_relayed = max(direct), max(relayed)
    ratio = best_relayed / best_direct
    print(
        f"relay: direct={best_direct:.0f} MB/s relayed={best_relayed:.0f} MB/s "
        f"ratio=Y/X={ratio:.2f} peak_rss={float(rss_after):.0f} MB "
        f"(relay process: {float(rss_before):.0f} MB before relaying {args.repeat} x "
        f"{args.mb} MB, {float(cpu):.2f} s CPU, {'copy' if args.copy else 'splice'}; "
        f"relay errors: {errors})"
    )
    return 0 if ratio >= 0.5 and errors == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
