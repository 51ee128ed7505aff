"""Scripts as separate processes: the seed's "run server.py, then client.py" way.

Rules of this file: a process's output is read by a reader thread into memory and
shown only when the main thread asks (never printed from the reader thread). Every
wait has a bound; a process still running at the bound is stopped and the error says
what it printed so far.

Readiness: ``start_script(..., listen_port=P)`` returns once the process has a socket
in LISTEN state on port P, read from the operating system through psutil (the same
thing ``ss -ltnp`` shows). That is a short bounded poll of the OS table: it never
connects, so the script's single ``accept()`` still gets the real client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

DEFAULT_TIMEOUT = 10.0


class ProcessError(RuntimeError):
    """A script did not do what was expected (exit, listen) in time."""


def scratch_dir(name: str = "scratch") -> Path:
    """A folder for files the notebooks write (git ignores notebooks/scratch/)."""
    path = Path(name)
    path.mkdir(exist_ok=True)
    return path


class Process:
    """A running script. ``output`` holds what it printed (stdout and stderr, in order).

    >>> with netlab.start_script("server.py", "5000", listen_port=5000) as server:
    ...     print(netlab.run_script("client.py", "5000").output)
    """

    def __init__(self, args: list[str], cwd=None):
        self.args = [str(a) for a in args]
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        self._popen = subprocess.Popen(
            [sys.executable, "-u", *self.args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True, name="netlab-reader")
        self._reader.start()

    def _read(self) -> None:
        for line in self._popen.stdout:
            with self._lock:
                self._chunks.append(line)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    @property
    def output(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def __repr__(self) -> str:
        state = "running" if self.returncode is None else f"exited with {self.returncode}"
        return f"<netlab process {' '.join(self.args)!r}, {state}>"

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_listening(self, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Return once this process listens on ``port``; raise ProcessError otherwise."""
        deadline = time.monotonic() + timeout
        proc = psutil.Process(self.pid)
        exited = threading.Event()
        while True:
            if self.returncode is not None:
                self._reader.join(1)
                raise ProcessError(
                    f"netlab: {' '.join(self.args)!r} exited (code {self.returncode}) before it "
                    f"listened on port {port}. It printed:\n{self.output}"
                )
            try:
                if any(
                    c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                    for c in proc.net_connections(kind="inet")
                ):
                    return
            except psutil.NoSuchProcess:
                continue  # it exited: the next turn reports it
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(
                    f"netlab: {' '.join(self.args)!r} did not listen on port {port} within "
                    f"{timeout:g} s. It printed:\n{self.output}"
                )
            exited.wait(0.01)  # bounded poll of the OS table, see the module docstring

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the process to exit and return its exit code (stop it at the bound)."""
        try:
            code = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ProcessError(
                f"netlab: {' '.join(self.args)!r} was still running after {timeout:g} s and "
                f"was stopped. It printed:\n{self.output}"
            ) from None
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = 2.0) -> None:
        """Terminate the process if it still runs (then kill it). Idempotent."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(timeout)
        self._reader.join(timeout)
        if self._popen.stdout:
            self._popen.stdout.close()


def start_script(
    script, *args, listen_port: int | None = None, cwd=None, timeout: float = DEFAULT_TIMEOUT
) -> Process:
    """Start ``python script args...``; with ``listen_port``, return once it listens there."""
    process = Process([script, *args], cwd=cwd)
    if listen_port is not None:
        process.wait_listening(listen_port, timeout)
    return process


def run_script(script, *args, cwd=None, timeout: float = DEFAULT_TIMEOUT) -> Process:
    """Run ``python script args...`` to the end (at most ``timeout`` s) and return it."""
    process = Process([script, *args], cwd=cwd)
    process.wait(timeout)
    return process
