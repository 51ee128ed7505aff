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

import os
import zlib
from pathlib import Path

import pytest

_WORKERS = 8  # ports per checkout: `make unit` runs at most this many workers apart
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


# How the unit tests share the machine when pytest-xdist runs them in parallel
# (`make unit`: ``-n 4 --dist loadgroup``). Most tests wait on sockets, not on the CPU,
# so four workers on two cores finish sooner. Each test file is one group, so that its
# module-scoped fixtures (such as test_promise.py's kernels) are made once; the files
# that run notebooks may run side by side because every worker has its own port for
# netlab's "5000" (above). Group names are the files' stems: xdist reads a "." in a
# group name as part of the test's id.
@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.path.stem.replace("-", "_")))
