"""Bulk transfer, the course's fastest path: a sink that counts, and a sender that fills it.

    python -m helpers.servers.bulk 5000            # the sink, as its own process
    mb_per_s = send_for(5000, seconds=1.0)         # a client: as much as it can in 1 s

What iperf3 measures (notebook 12, bench/bench_bulk.py): one connection, one direction,
as fast as the two ends can move bytes. The echo servers of this package move every byte
twice (in and out) and allocate a new ``bytes`` per ``recv``; this sink does the least
Python can do per byte:
- ``recv_into`` one preallocated 1 MiB buffer: no allocation per read, and few calls
  (each ``recv`` is a system call: its fixed cost is paid per call, not per byte);
- the sender ``sendall``s one 1 MiB ``memoryview`` over and over: no copy in Python;
- at the end of the stream (the sender's SHUT_WR) the sink answers with the count, 8
  bytes, so that the sender's clock stops when every byte has really arrived.
Every blocking call has a timeout; the sink serves connections one after another (one
thread per connection, as threaded.py: a bulk client is rarely alone for long).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

BUFFER = 1 << 20  # 1 MiB per recv_into and per sendall
IDLE_TIMEOUT = 30.0
BACKLOG = 128


def sink_client(conn: socket.socket) -> None:
    """Read until EOF into one buffer, then answer with the byte count (8 bytes)."""
    buffer = bytearray(BUFFER)
    total = 0
    with conn:
        conn.settimeout(IDLE_TIMEOUT)
        try:
            while n := conn.recv_into(buffer):
                total += n
            conn.sendall(total.to_bytes(8, "big"))
        except (TimeoutError, ConnectionError):
            return


def bulk_sink_server(port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows it would let another socket take this port (notebook 02)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    with listener:
        while True:
            conn, _address = listener.accept()
            threading.Thread(target=sink_client, args=(conn,), daemon=True).start()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"the sink closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def send_for(port: int, seconds: float = 1.0, timeout: float = 10.0) -> float:
    """Send to the sink on ``port`` for about ``seconds``; return MB/s (10**6 bytes/s),
    timed until the sink confirmed the count. Raises if the count differs."""
    block = memoryview(bytes(BUFFER))
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            sock.sendall(block)
            sent += len(block)
        sock.shutdown(socket.SHUT_WR)  # "that was all": the sink answers with its count
        received = int.from_bytes(_recv_exactly(sock, 8), "big")
        elapsed = time.perf_counter() - start
    if received != sent:
        raise ConnectionError(f"the sink received {received} bytes, not {sent}")
    return sent / elapsed / 1e6


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m helpers.servers.bulk PORT", file=sys.stderr)
        return 2
    try:
        bulk_sink_server(int(argv[0]))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def iperf3_mb_per_s(seconds: int = 1, timeout: float = 15.0) -> dict:
    """Run iperf3 on loopback (a one-off server and a client, two processes) for
    ``seconds`` (whole seconds: iperf3 -t reads an integer); return its JSON report's figures: ``mb_per_s`` (received, 10**6 bytes/s),
    ``bytes``, ``blksize`` (the size of each write). Raises FileNotFoundError without
    iperf3, TimeoutError past ``timeout``."""
    import json
    import selectors
    import subprocess

    port = _free_port()
    server = subprocess.Popen(
        ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port), "--forceflush"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # iperf3 says "Server listening on PORT" once it listens: wait for those words
        # (raw reads: a buffered readline could keep them where select() cannot see)
        deadline = time.monotonic() + timeout
        said = b""
        with selectors.DefaultSelector() as selector:
            selector.register(server.stdout, selectors.EVENT_READ)
            while b"listening" not in said:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise TimeoutError(f"iperf3 -s did not listen within {timeout:g} s")
                chunk = os.read(server.stdout.fileno(), 4096)
                if not chunk:
                    raise ConnectionError(f"iperf3 -s ended (exit code {server.wait(1)})")
                said += chunk
        client = subprocess.run(
            ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(int(seconds)), "-J"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        report = json.loads(client.stdout)
        if "error" in report:
            raise ConnectionError(f"iperf3: {report['error']}")
        received = report["end"]["sum_received"]
        return {
            "mb_per_s": received["bits_per_second"] / 8 / 1e6,
            "bytes": received["bytes"],
            "blksize": report["start"]["test_start"]["blksize"],
        }
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"iperf3 -c did not finish within {timeout:g} s") from None
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout)
        server.stdout.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
