"""How the unit tests share the machine when pytest-xdist runs them in parallel.

`make unit` runs them with ``-n 4 --dist loadgroup``: most tests wait on sockets, not on
the CPU, so four workers on two cores finish sooner. Each test file is one group (its
module-scoped fixtures, such as test_promise.py's kernels, are made once), except the
files that run the notebooks themselves: notebooks prefer the seed's port 5000 and
connect to it on purpose (a client with no server), so two notebooks must never run at
the same time in one checkout. Those files share one group and run one after another.
"""

from __future__ import annotations

import pytest

RUN_NOTEBOOKS = {"test_rerun.py", "test_browser.py", "test_port_5000_taken.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        group = "notebooks-on-port-5000" if name in RUN_NOTEBOOKS else name
        item.add_marker(pytest.mark.xdist_group(group))
