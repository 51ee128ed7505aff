"""What netlab costs: serve() beside a bare bind + listen, and round trips with and
without netlab.

Prints, each measured in this run:
- ``netlab start``: the median over 200 ``serve()`` calls (from the call until it
  returns: the server listens and has settled) beside a bare bind + listen
  (targets: <= 2 ms and <= 20x);
- ``round trip (client thread)``: the median of 20,000 one-byte round trips by a plain
  client thread against a plain echo thread, in a process without netlab and in one
  that imported it (target ratio <= 1.05: threads that no netlab server owns pay
  nothing);
- ``round trip (server thread)``: the same client against an echo server that netlab
  runs (its socket calls are the ones netlab tracks), beside the plain echo thread.

Each round-trip figure is the median of 5 runs, alternating the modes, each in a new
process so that netlab's patches are in place or not from the start.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

RUNS = 200
TRIPS = 20_000
REPEATS = 5
ROOT = Path(__file__).resolve().parents[1]


def listening_server(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    s.listen(5)
    s.accept()


def bare_once() -> float:
    start = time.perf_counter()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    elapsed = time.perf_counter() - start
    s.close()
    return elapsed


def netlab_once(netlab) -> float:
    start = time.perf_counter()
    srv = netlab.serve(listening_server, port=0, announce=False)
    elapsed = time.perf_counter() - start
    srv.stop()
    return elapsed


def echo(port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        c, _ = s.accept()
        with c:
            while data := c.recv(1):
                c.sendall(data)


def round_trips(mode: str) -> float:
    """Median seconds of one 1-byte round trip (run in a child process)."""
    if mode == "plain":
        server = None
    else:
        from helpers import netlab

        server = netlab.serve(echo, port=0, announce=False) if mode == "served" else None
    if server is None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        ready = threading.Thread(target=echo, args=(port,), daemon=True)
        ready.start()
        for _ in range(500):  # the echo thread binds first; connect when it listens
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except ConnectionRefusedError:
                threading.Event().wait(0.002)
        else:
            raise RuntimeError("echo thread never listened")
    else:
        client = socket.create_connection(server.address, timeout=5)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    with client:
        for _ in range(TRIPS):
            start = time.perf_counter_ns()
            client.sendall(b"x")
            client.recv(1)
            samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e9


def child(mode: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    ).stdout
    return float(out.split()[-1])


def main() -> None:
    from helpers import netlab

    bare = statistics.median(bare_once() for _ in range(RUNS))
    started = statistics.median(netlab_once(netlab) for _ in range(RUNS))
    ok = started <= 0.002 and started / bare <= 20
    print(
        f"netlab start: median over {RUNS} starts: serve()={started * 1e3:.3f} ms "
        f"bare bind+listen={bare * 1e3:.3f} ms ratio={started / bare:.0f}x "
        f"(target <= 2 ms and <= 20x: {'met' if ok else 'not met'})"
    )
    figures = {"plain": [], "imported": [], "served": []}
    for _ in range(REPEATS):
        for mode in figures:
            figures[mode].append(child(mode))
    plain, imported, served = (statistics.median(figures[m]) for m in figures)
    ratio = imported / plain
    print(
        f"round trip (client thread): without netlab={plain * 1e6:.1f} us "
        f"with netlab imported={imported * 1e6:.1f} us ratio={ratio:.3f} "
        f"(target <= 1.05: {'met' if ratio <= 1.05 else 'not met'})"
    )
    print(
        f"round trip (server thread): plain echo thread={plain * 1e6:.1f} us "
        f"netlab server={served * 1e6:.1f} us ratio={served / plain:.3f}"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        sys.path.insert(0, str(ROOT))
        print(round_trips(sys.argv[2]))
    else:
        main()
