"""Every pytest run in this checkout (unit tests and nbval alike) gets its own port for
netlab's "5000".

netlab prefers port 5000 (``NETLAB_PORT`` overrides it, see helpers/netlab/_ports.py).
Two test runs on one machine (a second clone, or parallel workers of pytest-xdist)
would otherwise both use 5000, and a notebook's client could reach the other run's
server. The port is derived from this checkout's path and the xdist worker, so it is
the same on every run of the same checkout; below the ephemeral range, so the OS never
hands it to a client; and, if something holds it anyway, netlab takes a free port and
says why, exactly as it does for 5000.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import zlib
from pathlib import Path

_WORKERS = 8  # ports per checkout: enough for `make test WORKERS=8`
_BASE = 20000 + zlib.crc32(str(Path(__file__).resolve().parent).encode()) % 1250 * _WORKERS


def _worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


# pytest-xdist's controller imports this file before it starts the workers, and they
# inherit its environment: a port set by the controller is marked as ours, so that each
# worker sets its own (a NETLAB_PORT set by whoever runs pytest is kept). A subprocess
# of a worker (a nested pytest, a kernel) inherits the worker's port and keeps it.
if os.environ.get("NETLAB_PORT_FROM") == "conftest.py" or "NETLAB_PORT" not in os.environ:
    os.environ["NETLAB_PORT"] = str(_BASE + _worker_number() % _WORKERS)
    os.environ["NETLAB_PORT_FROM"] = "conftest.py"


# How the tests share the machine when pytest-xdist runs them in parallel (`make test`:
# ``-n 4 --dist loadfile``, the unit tests and nbval's notebooks together). Most tests
# wait on sockets, not on the CPU, so four workers on two cores finish sooner. Each file
# (a test module, a notebook) runs on one worker, so that a module's fixtures (such as
# test_promise.py's kernels) are made once and a notebook's cells share one kernel; the
# files that run notebooks may run side by side because every worker has its own port
# for netlab's "5000" (above).


# Kernels that the tests start (nbval's, test_rerun's, the lab's) talk to this process over
# IPC, Unix sockets in a folder of this process, instead of TCP. jupyter_client picks a TCP
# kernel's five ports by binding port 0 and closing the socket again; the kernel binds them
# later, and in between a kernel of another worker (or anything else) can take one: that
# kernel then dies before it answers kernel_info. IPC has no ports to lose. (tests/
# kernelcells.py chooses IPC for its kernels itself.)
#
# The kernels' TMPDIR is a folder in it too. nbval ends a kernel with SIGKILL
# (shutdown_kernel(now=True)), so what a notebook leaves for its interpreter's exit to
# remove stays behind: notebook 10's TemporaryDirectory of keys, one per run, in /tmp.
# Here it goes with the folder when this process exits.
def _kernels_over_ipc() -> None:
    try:
        from jupyter_client.manager import KernelManager
    except ImportError:  # a plain Python without Jupyter: nothing starts kernels
        return
    if getattr(KernelManager, "_netlab_tests_ipc", False):
        return
    folder = tempfile.mkdtemp(prefix="kernels-")
    atexit.register(shutil.rmtree, folder, True)
    kernels_tmp = os.path.join(folder, "tmp")
    os.mkdir(kernels_tmp)
    numbers = itertools.count(1)
    pre_start = KernelManager._async_pre_start_kernel

    async def _async_pre_start_kernel(self, **kw):
        if self.transport == "tcp" and not self._connection_file_written:
            self.transport = "ipc"
            self.ip = os.path.join(folder, f"k{next(numbers)}")
        kw["env"] = {**(kw.get("env") or os.environ), "TMPDIR": kernels_tmp}
        return await pre_start(self, **kw)

    KernelManager._async_pre_start_kernel = _async_pre_start_kernel
    KernelManager._netlab_tests_ipc = True


_kernels_over_ipc()


_LOW_PORT_LIMIT = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")


def pytest_report_header(config) -> list[str]:
    """Notebook 02's stored output shows an ordinary user refused port 80, the Linux default
    (ports below 1024 are privileged). A container that lowers the limit (Docker 20.10+
    does, in a container with its own network) makes that cell differ: say so first."""
    try:
        limit = int(_LOW_PORT_LIMIT.read_text())
    except (OSError, ValueError):
        return []
    if limit == 1024:
        return []
    return [
        f"note: net.ipv4.ip_unprivileged_port_start is {limit} here, not Linux's default 1024:"
        " notebook 02's low-port cell will differ from its stored output. Run the tests with"
        " the default (`sysctl -w net.ipv4.ip_unprivileged_port_start=1024` as root, or"
        " `docker run --sysctl net.ipv4.ip_unprivileged_port_start=1024 ...`)."
    ]
