"""Start a JupyterLab process for a test and know when it answers HTTP.

Jupyter prints its URL a moment before it accepts connections, so readiness is the
server answering /api/status (retried on "connection refused" up to a deadline, each
retry after a short bounded wait), not the log line alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request


def get(url: str, token: str, timeout: float = 10.0):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


class Lab:
    """A JupyterLab started by ``command``; ``base`` is its URL, ``log`` what it printed."""

    def __init__(self, command: list[str], port: int, token: str, **popen):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.log: list[str] = []
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            **popen,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._process.stdout:
            self.log.append(line)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        pause = threading.Event()  # never set: a bounded wait between two tries
        while True:
            if self._process.poll() is not None:
                raise AssertionError("JupyterLab exited:\n" + "".join(self.log[-30:]))
            try:
                status, _ = get(f"{self.base}/api/status", self.token, timeout=5)
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"JupyterLab did not answer within {timeout:g} s:\n" + "".join(self.log[-30:])
                )
            pause.wait(0.2)

    def stop(self) -> None:
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(5)
