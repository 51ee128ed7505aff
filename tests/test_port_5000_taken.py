"""Notebook 01 passes strict nbval while another process holds netlab's port 5000.

That is the macOS learner's situation (the AirPlay Receiver holds 5000): netlab must
pick another port, say why, and the notebook's outputs must still match. The port held
is the one netlab prefers in this run: 5000, or the checkout's own (``NETLAB_PORT``, set
by conftest.py so that two test runs on one machine do not meet). If something else
holds it already, that is the very condition under test.
"""

import subprocess
import sys
from pathlib import Path

from helpers import netlab

ROOT = Path(__file__).resolve().parents[1]
HOLD_5000 = (
    "import socket, sys, threading, time\n"
    "s = socket.socket()\n"
    "# like any real server: TIME_WAIT left by an earlier run must not stop it\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "deadline = time.monotonic() + 10  # a kernel of an earlier test may still be closing\n"
    "while True:\n"
    "    try:\n"
    "        s.bind(('127.0.0.1', int(sys.argv[1])))\n"
    "        break\n"
    "    except OSError:\n"
    "        if time.monotonic() > deadline:\n"
    "            raise\n"
    "        threading.Event().wait(0.1)\n"
    "s.listen()\n"
    "print('holding', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_notebook_01_with_port_5000_taken():
    port = netlab.preferred_port()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_5000, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = holder.stdout.readline().strip()
        if line != "holding":  # held by another program already: the condition itself
            assert not netlab.is_free(port), f"could not hold port {port}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--nbval",
                "--nbval-sanitize-with",
                str(ROOT / "tests" / "sanitize.cfg"),
                "--nbval-cell-timeout=60",
                str(ROOT / "notebooks" / "01-first-server-and-client.ipynb"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert " passed" in result.stdout
    finally:
        holder.stdin.close()
        holder.wait(5)
