"""Learners re-run cells: every notebook, run top to bottom twice in one kernel.

Each notebook (``notebooks/*.ipynb``: a new one is covered without editing this file)
gets its own kernel, started in the notebooks folder as nbval does. Both runs must raise
nothing except in the cells tagged ``raises-exception`` (nbclient checks the tag), and
the second run of every cell must show what the first run showed, compared the way
nbval compares (``make nbval``):

- the regex/replace pairs of ``tests/sanitize.cfg``, parsed as nbval parses them and
  applied in order, to every text compared;
- stream output coalesced per stream name (nbval's ``coalesce_streams``, with its
  handling of ``\\r`` and ``\\b``), error ``ename``/``evalue`` (not the traceback),
  and ``text/plain`` of display data and execute results (not execution counts);
- cells marked as nbval marks ignored output (a ``# NBVAL_IGNORE_OUTPUT`` comment line,
  or the ``nbval-ignore-output`` tag) are run but not compared.

A cell whose second run legitimately differs has an entry in ``ALLOWED``: narrow (one
notebook, one cell picked by a piece of its source, one exact rewrite of the first
run's text), each with its reason. An entry that no longer matches anything fails, so
that none outlives its reason.

While both runs go on, a thread of this test samples every socket of the kernel and of
its child processes (notebook 01 runs scripts) every few milliseconds, as ``ss`` would
see them: none may be bound beyond loopback (127.0.0.0/8, ::1), except in the cells of
``EVERY_INTERFACE_ON_PURPOSE``, each named with its reason.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import psutil
import pytest
from bound_sockets import bound_beyond_loopback
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SANITIZE_FILE = ROOT / "tests" / "sanitize.cfg"

CELL_TIMEOUT = 60  # seconds per cell (as `make nbval`: --nbval-cell-timeout=60)
START_TIMEOUT = 60  # seconds for the kernel to start
NOTEBOOK_BUDGET = 900  # seconds for both runs of one notebook, checked between cells

IGNORE_TAG = "nbval-ignore-output"
IGNORE_COMMENT = "NBVAL_IGNORE_OUTPUT"


# --- nbval's rules, written out -----------------------------------------------------------


def sanitize_patterns(text: str) -> list[tuple[str, str]]:
    """The (regex, replace) pairs of a sanitize file, as nbval reads them.

    nbval: ``re.findall('^regex: (.*)$\\n^replace: (.*)$', text, re.M)``, kept in a dict
    (a regex given twice keeps its first place and its last replacement).
    """
    pairs = re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)
    return list(dict(pairs).items())


PATTERNS = sanitize_patterns(SANITIZE_FILE.read_text(encoding="utf-8"))


def sanitize(text: str) -> str:
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


def ignores_output(cell) -> bool:
    """nbval's rule: the tag, or a line that is the comment ``# NBVAL_IGNORE_OUTPUT``."""
    if IGNORE_TAG in (cell.metadata.get("tags") or []):
        return True
    for line in cell.source.splitlines():
        line = line.strip()
        if line.startswith("#") and line.lstrip("#").strip() == IGNORE_COMMENT:
            return True
    return False


_CARRIAGE_RETURN = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
_BACKSPACE = re.compile("[^\n]\x08")  # a character, then a backspace (\x08)


def _terminal(text: str) -> str:
    """What a terminal shows for ``text`` (nbval's handling of \\b and \\r)."""
    old = None
    while old is None or len(text) < len(old):
        old, text = text, _BACKSPACE.sub("", text)
    return _CARRIAGE_RETURN.sub("", text)


def comparable(outputs) -> list[tuple[str, str, str]]:
    """A cell's outputs as nbval compares them, sanitized.

    Streams are coalesced per name at the place of that stream's first output
    (nbval's ``coalesce_streams``); errors are (ename, evalue); display data and
    execute results are their text/plain.
    """
    items: list[list[str]] = []
    streams: dict[str, list[str]] = {}
    for out in outputs:
        kind = out.output_type
        if kind == "stream":
            if out.name in streams:
                streams[out.name][2] += out.text
            else:
                streams[out.name] = ["stream", out.name, out.text]
                items.append(streams[out.name])
        elif kind == "error":
            items.append(["error", out.ename, out.evalue])
        elif kind in ("display_data", "execute_result"):
            items.append(["text/plain", kind, out.get("data", {}).get("text/plain", "")])
    for item in streams.values():
        item[2] = _terminal(item[2])
    return [(kind, name, sanitize(text)) for kind, name, text in items]


# --- the differences a second run may legitimately show ------------------------------------


@dataclass(frozen=True)
class Allowed:
    """In ``notebook``, the cell whose source contains ``cell``: the second run shows
    the first run's text with the first match of ``first`` (a regex, ``^``/``$`` per
    line) replaced by ``second``."""

    notebook: str
    cell: str
    first: str
    second: str
    why: str

    def applies(self, notebook: str, source: str) -> bool:
        return notebook == self.notebook and self.cell in source

    def expected(self, outputs):
        changed = []
        for kind, name, text in outputs:
            new, count = re.subn(self.first, self.second, text, count=1, flags=re.MULTILINE)
            changed.append((kind, name, new))
            if count:
                return changed + list(outputs[len(changed) :]), True
        return list(outputs), False


# None is needed today (all notebooks, run twice, checked): what differs between the runs
# is only what sanitize.cfg already evens out for nbval: ephemeral and free port numbers
# (client ports, port=None servers, relays), and the "(port 5000 is taken by another
# program ...)" note when something else holds 5000 meanwhile; re-running serve() with the
# same function stops the old server first, so "taken by your server" never shows on a
# re-run. 06-udp's round-trip times differ, in its cell marked # NBVAL_IGNORE_OUTPUT.
# An entry looks like:
#     Allowed("01-first-server-and-client.ipynb", "srv = netlab.serve(server)",
#             r"^first run's line$", "second run's line", why="...")
ALLOWED: tuple[Allowed, ...] = ()


# --- nothing beyond loopback --------------------------------------------------------------

# Cells that bind every interface to show what that means, each for the length of the cell:
# (notebook, a piece of the cell's source, why).
EVERY_INTERFACE_ON_PURPOSE = (
    (
        "02-anatomy-of-a-connection.ipynb",
        's.bind(("", 0))  # port 0: any free port',
        "shows what '' becomes (0.0.0.0); the socket is closed at the end of the cell",
    ),
    (
        "02-anatomy-of-a-connection.ipynb",
        "def who_can_connect(bind_host):",
        "compares who can connect to a server on '' and on 127.0.0.1, then closes it",
    ),
    (
        "11-names-and-addresses.ipynb",
        'with socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True) as dual:',
        "a dual-stack socket must be bound to '::' (the text says so); it lives for the "
        "cell's two loopback connections (a 5 ms sampler saw it in 1 of about 10 runs)",
    ),
)
SAMPLE_EVERY = 0.005  # seconds between two looks at the kernel's sockets


class BindSampler:
    """Looks at the sockets of a process and its children until stopped; keeps every
    socket bound beyond loopback, with the cell that ran when it was seen."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.cell = None  # (run, index, source) of the cell running now
        self.seen: dict[tuple, tuple] = {}  # (run, index, laddr, kind) -> cell
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bind-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            self.look()

    def look(self) -> None:
        """One look now (the thread looks every few ms; the test looks at each cell's end,
        so that a socket left open by a cell is always found, however loaded the machine).
        What a look sees is kept only if the same cell ran from its start to its end: on
        a busy machine a look can outlast its cell."""
        cell = self.cell
        if cell is None:
            return
        found = bound_beyond_loopback(self._processes())
        if self.cell is not cell:
            return
        for address, kind in found:
            self.seen.setdefault((cell[0], cell[1], address, kind), cell)
        self.looks += 1

    def _processes(self):
        try:
            return [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def beyond_loopback(self, name: str) -> list[str]:
        """The sockets seen bound beyond loopback outside the cells allowed to. A socket
        still open in later cells (closed by a later cell) is reported with the cell
        that opened it, once; unless that cell was allowed to open it: then the later
        cells are reported, for it outlived its cell."""
        found = []
        opened_in: dict[tuple, bool] = {}  # (run, address, kind) -> opened on purpose
        for (run, index, address, kind), (_, _, source) in sorted(self.seen.items()):
            on_purpose = any(
                nb == name and piece in source for nb, piece, _ in EVERY_INTERFACE_ON_PURPOSE
            )
            key = (run, address, kind)
            if key in opened_in:
                if not opened_in[key] or on_purpose:
                    continue  # the same socket, already reported with its cell
            else:
                opened_in[key] = on_purpose
            if on_purpose:
                continue
            found.append(
                f"run {run}, cell {index}: a socket on {address} ({kind})\n--- source ---\n{source}"
            )
        return found


# --- the test --------------------------------------------------------------------------


def _run_cell(client, cell, index: int, name: str, run: int, deadline: float, sampler) -> None:
    if time.monotonic() > deadline:
        pytest.fail(f"{name}: both runs took longer than {NOTEBOOK_BUDGET} s (run {run})")
    sampler.cell = (run, index, cell.source)
    try:
        client.execute_cell(cell, index)  # CellExecutionError on an untagged error
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        pytest.fail(
            f"{name}, run {run}, cell {index}: {type(exc).__name__}\n"
            f"--- source ---\n{cell.source}\n--- error ---\n{exc}",
            pytrace=False,
        )
    finally:
        sampler.look()
        sampler.cell = None


def _show(outputs) -> str:
    return "\n".join(f"  {kind} {name}: {text!r}" for kind, name, text in outputs) or "  (none)"


def rerun(path: Path, allowed=ALLOWED) -> tuple[list[str], list[Allowed], list[str]]:
    """Run the notebook twice in one kernel: the cells whose second run differs (each
    described with its source and both outputs), the allowances that matched nothing, and
    the sockets seen bound beyond loopback (see ``BindSampler``)."""
    name = path.name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=START_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    deadline = time.monotonic() + NOTEBOOK_BUDGET
    code = [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    first: dict[int, list] = {}
    differences = []
    used: set[Allowed] = set()
    with client.setup_kernel(), BindSampler(client.km.provisioner.pid) as sampler:
        for index, cell in code:
            _run_cell(client, cell, index, name, 1, deadline, sampler)
            first[index] = comparable(cell.outputs)
        for index, cell in code:
            _run_cell(client, cell, index, name, 2, deadline, sampler)
            if ignores_output(cell):
                continue
            expected, second = first[index], comparable(cell.outputs)
            for allowance in allowed:
                if allowance.applies(name, cell.source):
                    expected, matched = allowance.expected(expected)
                    if matched:
                        used.add(allowance)
            if second != expected:
                differences.append(
                    f"cell {index}:\n--- source ---\n{cell.source}\n"
                    f"--- first run ---\n{_show(first[index])}\n"
                    f"--- second run ---\n{_show(second)}"
                )
    assert sampler.looks > 0, "the sampler never looked at the kernel's sockets"
    stale = [a for a in allowed if a.notebook == name and a not in used]
    return differences, stale, sampler.beyond_loopback(name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_second_run_shows_what_the_first_showed(path):
    differences, stale, beyond = rerun(path)
    assert not stale, f"{path.name}: allowances that matched nothing (remove them): {stale}"
    assert not differences, f"{path.name}: the second run differs:\n\n" + "\n\n".join(differences)
    assert not beyond, f"{path.name}: sockets beyond loopback:\n\n" + "\n\n".join(beyond)


# --- the comparison itself -------------------------------------------------------------


def test_sanitize_file_parses_completely():
    """Every ``regex:`` line of sanitize.cfg has its ``replace:`` line (else nbval drops
    the pair silently, and so would this test)."""
    text = SANITIZE_FILE.read_text(encoding="utf-8")
    assert PATTERNS and len(PATTERNS) == len(re.findall(r"^regex: ", text, flags=re.MULTILINE))


def test_notebooks_are_found():
    assert len(NOTEBOOKS) >= 8, NOTEBOOKS


def test_comparable_coalesces_sanitizes_and_keeps_what_nbval_compares():
    outputs = nbformat.from_dict(
        [
            {"output_type": "stream", "name": "stdout", "text": "on 127.0.0.1:5000 \n"},
            {"output_type": "stream", "name": "stderr", "text": "warn\n"},
            {"output_type": "stream", "name": "stdout", "text": "ab\x08c\n10%\r100%\n"},
            {"output_type": "error", "ename": "E", "evalue": "port 40000", "traceback": ["x"]},
            {
                "output_type": "execute_result",
                "execution_count": 7,
                "metadata": {},
                "data": {"text/plain": "('127.0.0.1', 41234)", "text/html": "<b>x</b>"},
            },
        ]
    )
    assert comparable(outputs) == [
        ("stream", "stdout", "on 127.0.0.1:PORT\nac\n100%\n"),
        ("stream", "stderr", "warn\n"),
        ("error", "E", "port PORT"),
        ("text/plain", "execute_result", "('127.0.0.1', PORT)"),
    ]


def test_ignored_cells_are_recognised_as_nbval_does():
    def cell(source, tags=None):
        return nbformat.v4.new_code_cell(source, metadata={"tags": tags} if tags else {})

    assert ignores_output(cell("# NBVAL_IGNORE_OUTPUT\nprint(1)"))
    assert ignores_output(cell("x = 1\n  ## NBVAL_IGNORE_OUTPUT"))
    assert ignores_output(cell("print(1)", ["nbval-ignore-output"]))
    assert not ignores_output(cell("print('# NBVAL_IGNORE_OUTPUT')"))
    assert not ignores_output(cell("print(1)", ["raises-exception"]))


def test_a_changed_second_run_is_found_and_an_allowance_is_exact(tmp_path):
    """The harness itself, on a small notebook: a cell that counts its runs differs, an
    ignored one does not count, and an allowance covers exactly its own rewrite."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("runs = globals().get('runs', 0) + 1\nprint('run', runs)"),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nprint('run', runs)"),
        nbformat.v4.new_code_cell("print('same every time')"),
    ]
    path = tmp_path / "counting.ipynb"
    nbformat.write(nb, path)
    differences, stale, beyond = rerun(path, allowed=())
    assert len(differences) == 1 and differences[0].startswith("cell 0:"), differences
    assert "'run 1\\n'" in differences[0] and "'run 2\\n'" in differences[0]
    assert beyond == []
    exact = Allowed("counting.ipynb", "runs = ", r"^run 1$", "run 2", "counts its runs")
    assert rerun(path, allowed=(exact,)) == ([], [], [])
    wrong = Allowed("counting.ipynb", "runs = ", r"^run 1$", "run 3", "a wrong rewrite")
    unused = Allowed("counting.ipynb", "no such cell", "x", "y", "matches nothing")
    differences, stale, _ = rerun(path, allowed=(wrong, unused))
    assert len(differences) == 1 and stale == [unused]


def test_a_socket_beyond_loopback_is_found_with_its_cell(tmp_path):
    """The sampler, on a small notebook: an unbound UDP socket's sendto() binds 0.0.0.0
    (found, with its cell); one bound to 127.0.0.1 first is not; nor is a socket of a cell
    that EVERY_INTERFACE_ON_PURPOSE names."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import socket\n"
            "loose = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "loose.sendto(b'x', ('127.0.0.1', 9))"
        ),
        nbformat.v4.new_code_cell(
            "loose.close()\n"
            "tight = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "tight.bind(('127.0.0.1', 0))\n"
            "tight.sendto(b'x', ('127.0.0.1', 9))"
        ),
        nbformat.v4.new_code_cell("tight.close()"),
    ]
    path = tmp_path / "02-anatomy-of-a-connection.ipynb"  # a name the allowances know
    nbformat.write(nb, path)
    differences, stale, beyond = rerun(path, allowed=())
    assert differences == []
    heads = [re.sub(r":\d+ ", ":PORT ", line.split("\n")[0]) for line in beyond]
    assert heads == [
        "run 1, cell 0: a socket on 0.0.0.0:PORT (udp)",
        "run 2, cell 0: a socket on 0.0.0.0:PORT (udp)",
    ], beyond
