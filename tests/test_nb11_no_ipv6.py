"""Notebook 11 on a machine without an IPv6 loopback: it says so, and stays stable.

The stored outputs come from a machine where ::1 works. Here IPv6 is taken away in a
fresh kernel or process, in the two ways machines lack it:

- ``no-ipv6``: a kernel booted with ``ipv6.disable=1``. ``socket.socket(AF_INET6, ...)``
  raises ``OSError: [Errno 97] Address family not supported by protocol`` (EAFNOSUPPORT)
  and ``socket.has_ipv6`` is False;
- ``no-::1``: IPv6 works but the loopback has no ::1 (``net.ipv6.conf.lo.disable_ipv6=1``,
  seen in containers). IPv6 sockets exist, dual-stack sockets on ``::`` work, but binding
  or connecting to ::1 raises ``OSError: [Errno 99] Cannot assign requested address``.

Then:
- every cell of the notebook runs without an unexpected error;
- the probe cell says ``False``; each cell that needs ::1 (it begins with ``if not IPV6:``)
  prints exactly its one ``(not run: ...)`` line; every other cell shows what is stored,
  compared as nbval compares (tests/test_rerun.py's rules, sanitize.cfg included);
- the exercise checks still pass the reference solutions, say in their titles that ::1
  is not checked, and explain a server that insists on ::1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_rerun import comparable, ignores_output

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "11-names-and-addresses.ipynb"
IPV6_CELL = "if not IPV6:"
PROBE_CELL = "IPV6 = nb11.ipv6_loopback()"
NOT_RUN = "(not run: this machine has no IPv6 loopback, see section 1)\n"

# Run first in the process (or kernel): IPv6 taken away, one way or the other.
NO_IPV6 = """
import errno as _errno
import socket as _socket

_original_init = _socket.socket.__init__


def _no_inet6(self, *args, **kwargs):
    family = args[0] if args else kwargs.get("family", -1)
    fileno = args[3] if len(args) > 3 else kwargs.get("fileno")
    if family == _socket.AF_INET6 and fileno is None:
        raise OSError(_errno.EAFNOSUPPORT, "Address family not supported by protocol")
    _original_init(self, *args, **kwargs)


_socket.socket.__init__ = _no_inet6
_socket.has_ipv6 = False
"""

NO_LOOPBACK6 = """
import errno as _errno
import socket as _socket


def _refuse_loopback6(original):
    def call(self, address):
        if self.family == _socket.AF_INET6 and str(address[0]).split("%")[0] == "::1":
            raise OSError(_errno.EADDRNOTAVAIL, "Cannot assign requested address")
        return original(self, address)

    return call


for _name in ("bind", "connect", "connect_ex"):
    setattr(_socket.socket, _name, _refuse_loopback6(getattr(_socket.socket, _name)))
"""

WAYS = {"no-ipv6": NO_IPV6, "no-::1": NO_LOOPBACK6}


@pytest.mark.parametrize("way", list(WAYS))
def test_notebook_without_ipv6_says_so_and_shows_the_stored_outputs_elsewhere(way):
    stored = nbformat.read(NOTEBOOK, as_version=4)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(WAYS[way]))
    client = NotebookClient(
        nb,
        timeout=60,
        startup_timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # CellExecutionError on any error in a cell not tagged raises-exception
    problems = []
    ipv6_cells = 0
    for index, (old, new) in enumerate(zip(stored.cells, nb.cells[1:], strict=True)):
        if old.cell_type != "code" or ignores_output(old):
            continue
        got = comparable(new.outputs)
        if old.source.startswith(IPV6_CELL):
            ipv6_cells += 1
            expected = [("stream", "stdout", NOT_RUN)]
            assert comparable(old.outputs) != expected, "stored from a machine without ::1"
        elif PROBE_CELL in old.source:
            expected = [("stream", "stdout", "IPv6 loopback (::1) works here: False\n")]
        else:
            expected = comparable(old.outputs)
        if got != expected:
            problems.append(f"cell {index}:\n{old.source}\n--- expected {expected}\n--- got {got}")
    assert ipv6_cells >= 5, ipv6_cells
    assert not problems, "\n\n".join(problems)


CHECKS_WITHOUT_IPV6 = """
import json, socket
from helpers.exercises import nb11
from helpers.exercises.solutions import nb11 as sol


def insists_on_ipv6(port):
    six = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    six.bind(("::1", port))


def dual_stack(port):
    listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            while data := conn.recv(4096):
                conn.sendall(data)


report = {"probe": nb11.ipv6_loopback()}
for name in ["format_endpoint", "connect_any", "loopback_echo_server", "lookup_problem"]:
    verdict = getattr(nb11, "check_" + name)(getattr(sol, name))
    report[name] = [verdict.passed, str(verdict)]
verdict = nb11.check_loopback_echo_server(insists_on_ipv6)
report["insists"] = [verdict.passed, verdict.hint]
verdict = nb11.check_loopback_echo_server(dual_stack)
report["dual"] = [verdict.passed, verdict.hint]
print(json.dumps(report))
"""


@pytest.mark.parametrize("way", list(WAYS))
def test_checks_without_ipv6_pass_solutions_and_say_what_they_leave_out(way):
    done = subprocess.run(
        [sys.executable, "-c", WAYS[way] + CHECKS_WITHOUT_IPV6],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["probe"] is False
    for name in ["format_endpoint", "connect_any", "loopback_echo_server", "lookup_problem"]:
        passed, text = report[name]
        assert passed, text
    assert "no IPv6 loopback" in report["connect_any"][1]
    assert "::1 is not checked" in report["loopback_echo_server"][1]
    # a message in two parts is checked on 127.0.0.1 alone, so it is not left out here
    assert "✓ a message in two parts" in report["loopback_echo_server"][1]
    passed, hint = report["insists"]
    assert not passed and "no IPv6 loopback" in hint, hint
    passed, hint = report["dual"]
    # without IPv6 at all, a dual-stack socket cannot be made; without ::1 it can, on '::'
    expected = "no IPv6 loopback" if way == "no-ipv6" else "every interface"
    assert not passed and expected in hint, hint


def test_every_ignore_marker_is_one_nbval_recognises():
    """`# NBVAL_IGNORE_OUTPUT (reason)` on one line is no marker for nbval (the comment must be
    the marker alone), so such a cell was compared after all: the reason goes on its own line."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    marked = [c for c in nb.cells if c.cell_type == "code" and "NBVAL_IGNORE_OUTPUT" in c.source]
    assert len(marked) >= 3, len(marked)  # the scan finds them: 3 timing cells
    for cell in marked:
        assert ignores_output(cell), cell.source
