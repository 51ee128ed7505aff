"""How long netlab.serve() takes from call to listening, beside a bare bind + listen.

Prints the median over 200 starts of each, measured in the same run, and their ratio.
"""

import contextlib
import io
import socket
import statistics
import time

from helpers import netlab

RUNS = 200


def server(port):
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


def netlab_once() -> float:
    with contextlib.redirect_stdout(io.StringIO()):  # serve() announces each server
        start = time.perf_counter()
        srv = netlab.serve(server, port=0)
        elapsed = time.perf_counter() - start
        srv.stop()
    return elapsed


def main() -> None:
    bare = statistics.median(bare_once() for _ in range(RUNS))
    started = statistics.median(netlab_once() for _ in range(RUNS))
    print(
        f"netlab start: median over {RUNS} starts: serve()={started * 1e3:.3f} ms "
        f"bare bind+listen={bare * 1e3:.3f} ms ratio={started / bare:.0f}x"
    )


if __name__ == "__main__":
    main()
