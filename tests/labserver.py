"""Start a JupyterLab process for a test and know when it answers HTTP.

Jupyter prints its URL a moment before it accepts connections, so readiness is the
server answering /api/status (retried on "connection refused" up to a deadline, each
retry after a short bounded wait), not the log line alone.

The port is chosen before Jupyter binds it (Jupyter itself probes a port, closes it and
binds it again later), so on a busy machine another program can take it in between:
another test run's echo server did, and answered the test's GET with its own request.
So a reply that is not Jupyter's is "not ready", and a Jupyter that exits because its port
was taken is started again on another port (``Lab.start``).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from helpers import netlab

PORT_TAKEN = re.compile(r"The port \d+ is already in use")


class PortTaken(Exception):
    """JupyterLab exited because another program held its port."""


def get(url: str, token: str, timeout: float = 10.0):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


class Lab:
    """A JupyterLab started by ``command``; ``base`` is its URL, ``log`` what it printed."""

    def __init__(self, command: list[str], port: int, token: str, **popen):
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.log: list[str] = []
        self._drained = threading.Event()  # set once all it printed is in ``log``
        self.taken: list[int] = []  # ports lost to another program before this one (start)
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **popen,
        )
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def start(
        cls,
        command_for: Callable[[int], list[str]],
        token: str,
        *,
        port: int | None = None,
        attempts: int = 5,
        timeout: float = 90.0,
        **popen,
    ) -> Lab:
        """A JupyterLab that answers, run by ``command_for(port)``: on ``port`` if given,
        else on a free one, and on another free one each time the port was taken."""
        taken: list[int] = []
        for _ in range(attempts):
            chosen = netlab.free_port() if port is None or taken else port
            lab = cls(command_for(chosen), chosen, token, **popen)
            try:
                lab.wait_ready(timeout)
            except PortTaken:
                lab.stop()
                taken.append(chosen)
                continue
            except BaseException:
                lab.stop()
                raise
            lab.taken = taken
            return lab
        raise AssertionError(f"JupyterLab's port was taken {attempts} times in a row: {taken}")

    def _read(self) -> None:
        try:
            for line in self._process.stdout:
                self.log.append(line)
        finally:
            self._drained.set()

    def _answers(self) -> bool:
        """True when this JupyterLab answers /api/status (not another program on its port)."""
        try:
            status, body = get(f"{self.base}/api/status", self.token, timeout=5)
            return status == 200 and "started" in json.loads(body)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            # refused (not bound yet), or a reply that is not Jupyter's: not ready
            return False

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pause = threading.Event()  # never set: a bounded wait between two tries
        while True:
            if self._process.poll() is not None:
                self._drained.wait(5)
                tail = "".join(self.log[-30:])
                if any(PORT_TAKEN.search(line) for line in self.log):
                    raise PortTaken(tail)
                raise AssertionError("JupyterLab exited:\n" + tail)
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"JupyterLab did not answer within {timeout:g} s:\n" + "".join(self.log[-30:])
                )
            pause.wait(0.2)

    def stop(self) -> None:
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
        except ProcessLookupError:  # it has exited, and so has every process of its group
            pass
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(5)
