"""Run code cell by cell in a real IPython kernel and see each cell's own outputs.

    with Kernel(env={"NETLAB_OS_TABLE": "none"}) as k:
        cell = k.run("print('hi')")
        cell.stdout, cell.stderr, cell.error, cell.display, cell.seconds

Rules of this file:
- A cell's outputs are the IOPub messages whose ``parent_header.msg_id`` is that cell's
  execute_request, and nothing else: output that a kernel sends on behalf of a later
  cell belongs to that later cell. A cell is over when both its ``execute_reply`` (shell)
  and its ``status: idle`` (IOPub) have come. Output that still arrives for a cell after
  that is what a notebook front end drops or misplaces: it is kept apart, in
  ``cell.late`` and ``kernel.late``, never merged into the cell's output.
- Every wait has a bound (``CellTimeout``), and every wait notices a kernel that died
  (``KernelDied``, with its exit code: negative means killed by that signal).
- It never sleeps to synchronise: it polls the two ZMQ sockets and returns as soon as
  the message it waits for is there. 1,000 tiny cells take seconds.

The kernel is the ``python3`` kernel spec (this interpreter), started in a temporary
directory, with /work/main (this repository) first on ``PYTHONPATH`` so that
``from helpers import netlab`` works, its own IPYTHONDIR and no history database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq
from jupyter_client import KernelManager

ROOT = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 30.0
START_TIMEOUT = 60.0
_ALIVE_EVERY = 0.1  # how often a wait checks that the kernel process still exists


class KernelDied(AssertionError):
    """The kernel process exited while we waited on it (``exit_code`` < 0: a signal)."""

    def __init__(self, exit_code, cell: Cell | None = None):
        self.exit_code = exit_code
        self.cell = cell
        super().__init__(f"kernel died: {describe_exit(exit_code)}" + _tail(cell))


class CellTimeout(AssertionError):
    """A cell did not finish (reply and idle) within its timeout."""

    def __init__(self, cell: Cell, timeout: float, what: str = "finish"):
        self.cell = cell
        super().__init__(f"cell did not {what} within {timeout:g} s" + _tail(cell))


def describe_exit(code) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _tail(cell: Cell | None, chars: int = 1500) -> str:
    if cell is None:
        return ""
    text = cell.stdout[-chars:] + ("\n[stderr]\n" + cell.stderr[-chars:] if cell.stderr else "")
    return f"\n--- cell ---\n{cell.code}\n--- its output so far ---\n{text}"


@dataclass
class Cell:
    """One executed cell and the outputs whose parent is its execute_request."""

    code: str
    msg_id: str
    stdout: str = ""
    stderr: str = ""
    error: tuple[str, str] | None = None  # (ename, evalue)
    traceback: list[str] = field(default_factory=list)
    display: list[dict] = field(default_factory=list)  # data dicts of display_data/execute_result
    status: str | None = None  # the execute_reply's status: ok, error, aborted
    seconds: float = 0.0  # from sending the request to having reply and idle
    late: list[dict] = field(default_factory=list)  # IOPub messages that came after idle
    after_interrupt: float | None = None  # seconds from the interrupt to the cell's end
    replied: bool = False
    idle: bool = False
    started: float = 0.0

    @property
    def done(self) -> bool:
        return self.replied and self.idle

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def text(self) -> str:
        """Everything the cell showed as text: stdout, stderr, error and display text."""
        parts = [self.stdout, self.stderr]
        if self.error:
            parts.append(f"{self.error[0]}: {self.error[1]}\n")
        parts.extend(d.get("text/plain", "") + "\n" for d in self.display)
        return "".join(parts)

    def _take(self, msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            if content["name"] == "stdout":
                self.stdout += content["text"]
            else:
                self.stderr += content["text"]
        elif kind == "error":
            self.error = (content["ename"], content["evalue"])
            self.traceback = content.get("traceback", [])
        elif kind in ("display_data", "execute_result", "update_display_data"):
            self.display.append(content.get("data", {}))
        elif kind == "clear_output":
            self.stdout = self.stderr = ""
            self.display.clear()


class Kernel:
    """A real IPython kernel; ``run(code)`` executes one cell and returns its ``Cell``."""

    def __init__(self, env: dict | None = None, cwd: str | None = None, kernel_name="python3"):
        # A short private directory for the IPC sockets (a Unix socket path has at most
        # ~100 characters), the connection file and IPYTHONDIR; cwd defaults to it too.
        self._dir = tempfile.mkdtemp(prefix="kc-")
        self.cwd = cwd or self._dir
        self.env = dict(os.environ)
        path = [str(ROOT)] + [p for p in self.env.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.env["PYTHONPATH"] = os.pathsep.join(path)
        self.env["IPYTHONDIR"] = os.path.join(self._dir, "ipython")
        self.env.pop("JPY_PARENT_PID", None)
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = str(value)
        self.extra_env = dict(env or {})
        self.kernel_name = kernel_name
        self.pool: KernelPool | None = None  # set when a KernelPool made this kernel
        self.km: KernelManager | None = None
        self.kc = None
        self.cells: list[Cell] = []
        self.late: list[tuple[Cell, dict]] = []  # output for a cell that was already over
        self.stray: list[dict] = []  # IOPub messages whose parent is no cell of ours
        self._by_id: dict[str, Cell] = {}
        self._pending: Cell | None = None

    # --- life cycle ------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> Kernel:
        # IPC sockets in our directory: no TCP ports taken, no "unencrypted TCP" warning.
        self.km = KernelManager(
            kernel_name=self.kernel_name,
            transport="ipc",
            ip=os.path.join(self._dir, "ipc"),
            connection_file=os.path.join(self._dir, "kernel.json"),
        )
        self.km.start_kernel(
            cwd=self.cwd,
            env=self.env,
            extra_arguments=["--HistoryManager.enabled=False"],
        )
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            raise KernelDied(self.exit_code()) from exc
        self._poller = zmq.Poller()
        self._poller.register(self.kc.iopub_channel.socket, zmq.POLLIN)
        self._poller.register(self.kc.shell_channel.socket, zmq.POLLIN)
        self._drain()  # the idle/status messages of wait_for_ready's kernel_info
        return self

    def shutdown(self) -> None:
        if self.km is None:
            return
        try:
            if self.kc is not None:
                self.kc.stop_channels()
            if self.alive():
                self.km.shutdown_kernel(now=True)
            else:
                self.km.cleanup_resources()
        finally:
            self.km = self.kc = None

    def restart(self) -> Kernel:
        """A fresh kernel (after a death, too), same env and directory; history kept."""
        self.shutdown()
        self._pending = None
        return self.start()

    def spawn(self) -> Kernel:
        """Another fresh kernel with the same env (and prelude, when from a pool)."""
        if self.pool is not None:
            return self.pool.take(self.extra_env)
        return Kernel(env=self.extra_env, kernel_name=self.kernel_name).start()

    def __enter__(self) -> Kernel:
        return self.start() if self.km is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the kernel down and remove its private directory."""
        try:
            self.shutdown()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    # --- the process -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        return getattr(provisioner, "pid", None)

    def exit_code(self):
        """None while the kernel runs; its return code once it exited (-N: signal N)."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return None if self.km is not None and self.km.is_alive() else -1
        return process.poll()

    def alive(self) -> bool:
        return self.km is not None and self.exit_code() is None

    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    # --- cells -------------------------------------------------------------------------

    def submit(self, code: str) -> Cell:
        """Send a cell without waiting for it (see ``wait_output``, ``finish``)."""
        if self._pending is not None and not self._pending.done:
            raise RuntimeError("kernelcells: the previous cell has not finished")
        started = time.monotonic()
        msg_id = self.kc.execute(code, silent=False, store_history=True, allow_stdin=False)
        cell = Cell(code=code, msg_id=msg_id, started=started)
        self._by_id[msg_id] = cell
        self.cells.append(cell)
        self._pending = cell
        return cell

    def finish(self, cell: Cell, timeout: float = CELL_TIMEOUT) -> Cell:
        """Wait until ``cell`` has its reply and its idle status."""
        self._pump(lambda: cell.done, timeout, cell, "finish")
        cell.seconds = time.monotonic() - cell.started
        return cell

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> Cell:
        return self.finish(self.submit(code), timeout)

    def wait_output(self, cell: Cell, marker: str, timeout: float = CELL_TIMEOUT) -> Cell:
        """Wait until ``cell`` (still running) has printed ``marker`` to stdout."""
        self._pump(lambda: marker in cell.stdout or cell.done, timeout, cell, f"print {marker!r}")
        if marker not in cell.stdout:
            raise AssertionError(f"cell finished without printing {marker!r}" + _tail(cell))
        return cell

    def run_interrupted(
        self, code: str, marker: str, timeout: float = CELL_TIMEOUT, after: float = 5.0
    ) -> Cell:
        """Run ``code``, interrupt the kernel once the cell printed ``marker``, and wait at
        most ``after`` seconds for the cell to end (``cell.after_interrupt``: how long).

        The code should ``print(marker, flush=True)`` just before the call to interrupt.
        """
        cell = self.submit(code)
        self.wait_output(cell, marker, timeout)
        interrupted = time.monotonic()
        self.interrupt()
        self._pump(lambda: cell.done, after, cell, "end after the interrupt")
        cell.seconds = time.monotonic() - cell.started
        cell.after_interrupt = time.monotonic() - interrupted
        return cell

    def settle(self, timeout: float = 10.0) -> bool:
        """Let a cell left running (after a timeout) end: wait, interrupt, wait again.
        True when no cell is running any more and the kernel is alive."""
        cell = self._pending
        if cell is None or cell.done:
            return self.alive()
        for step in ("wait", "interrupt"):
            if step == "interrupt" and self.alive():
                self.interrupt()
            try:
                self._pump(lambda: cell.done, timeout / 2, cell, "end")
                return self.alive()
            except AssertionError:  # CellTimeout or KernelDied
                if not self.alive():
                    return False
        return False

    # --- the sockets ---------------------------------------------------------------------

    def _pump(self, done, timeout: float, cell: Cell | None, what: str) -> None:
        deadline = time.monotonic() + timeout
        next_alive = time.monotonic() + _ALIVE_EVERY
        while not done():
            now = time.monotonic()
            if now >= deadline:
                raise CellTimeout(cell, timeout, what)
            if now >= next_alive:
                if not self.alive():
                    self._drain()
                    if not done():
                        raise KernelDied(self.exit_code(), cell)
                next_alive = now + _ALIVE_EVERY
            wait = min(deadline, next_alive) - now
            for sock, _ in self._poller.poll(max(1, int(wait * 1000))):
                self._read(sock)

    def _drain(self) -> None:
        for sock, _ in self._poller.poll(0):
            self._read(sock)

    def _read(self, sock) -> None:
        while sock.poll(0):
            channel = (
                self.kc.iopub_channel
                if sock is self.kc.iopub_channel.socket
                else self.kc.shell_channel
            )
            msg = channel.get_msg(timeout=0)
            parent = msg.get("parent_header", {}).get("msg_id")
            cell = self._by_id.get(parent)
            if channel is self.kc.shell_channel:
                if cell is not None and msg["msg_type"] == "execute_reply":
                    cell.replied = True
                    cell.status = msg["content"].get("status")
                continue
            if cell is None:
                if msg["msg_type"] not in ("status", "execute_input"):
                    self.stray.append(msg)
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    cell.idle = True
                continue
            if msg["msg_type"] == "execute_input":
                continue
            if cell.idle:
                cell.late.append(msg)
                self.late.append((cell, msg))
            else:
                cell._take(msg)


class KernelPool:
    """Fresh kernels without waiting for them: ``take(env)`` returns a started kernel
    (``prelude`` already run) and starts the next one for that env in the background,
    so that a test suite pays a kernel's start-up time once, not once per test."""

    def __init__(self, prelude: str = "", spares: bool = True):
        self.prelude = prelude
        self.spares = spares
        self._futures: dict[tuple, Future] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kernelpool")
        self._lock = threading.Lock()
        atexit.register(self.close)

    def _start(self, env: dict) -> Kernel:
        kernel = Kernel(env=env).start()
        kernel.pool = self
        if self.prelude:
            cell = kernel.run(self.prelude)
            if cell.error:
                kernel.close()
                raise AssertionError(f"kernelcells: the prelude raised {cell.error}")
        return kernel

    def take(self, env: dict | None = None) -> Kernel:
        env = dict(env or {})
        key = tuple(sorted((k, "" if v is None else str(v)) for k, v in env.items()))
        with self._lock:
            future = self._futures.pop(key, None)
            if self.spares:
                self._futures[key] = self._executor.submit(self._start, env)
        if future is not None:
            try:
                return future.result(START_TIMEOUT)
            except Exception:  # noqa: BLE001 - a spare that failed: start one here
                pass
        return self._start(env)

    def close(self) -> None:
        with self._lock:
            futures, self._futures = list(self._futures.values()), {}
        for future in futures:
            try:
                future.result(START_TIMEOUT).close()
            except Exception:  # noqa: BLE001 - nothing to clean up then
                pass
        self._executor.shutdown(wait=False)

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def kernel_fixture(envs: dict[str, dict] | None = None, prelude: str = "", cleanup: str = ""):
    """A pytest fixture (function scope) yielding a fresh started ``Kernel``, one test
    per entry of ``envs`` (test id -> extra env vars; None removes a variable).

        k = kernel_fixture({"proc": {}, "none": {"NETLAB_OS_TABLE": "none"}}, PRELUDE)

        def test_x(k):
            cell = k.run("print(1)")

    ``cleanup`` runs in the kernel after the test (if the kernel still answers); then the
    kernel is shut down.
    """
    envs = envs or {"default": {}}
    pool = KernelPool(prelude)

    @pytest.fixture(params=list(envs.values()), ids=list(envs))
    def fixture(request):
        kernel = pool.take(request.param)
        try:
            yield kernel
            if cleanup and kernel.settle():  # a failed test may have left a cell running
                try:
                    kernel.run(cleanup, timeout=10)
                except AssertionError:
                    pass  # the kernel is shut down next anyway
        finally:
            kernel.close()

    return fixture
