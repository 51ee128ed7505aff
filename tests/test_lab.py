"""`make lab` starts a JupyterLab that serves notebook 00 and has ipywidgets working."""

import json
import os
import secrets
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

from helpers import netlab

ROOT = Path(__file__).resolve().parents[1]


def get(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def test_make_lab_serves_notebook_00_and_the_widget_extension():
    port = netlab.free_port()
    token = secrets.token_hex(16)
    args = f"--no-browser --port={port} --IdentityProvider.token={token} --ServerApp.port_retries=0"
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    started = threading.Event()
    log: list[str] = []

    def watch():
        for line in lab.stdout:
            log.append(line)
            if f"127.0.0.1:{port}/lab" in line:
                started.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        assert started.wait(90), "JupyterLab did not start within 90 s:\n" + "".join(log[-30:])
        base = f"http://127.0.0.1:{port}"
        status, body = get(f"{base}/api/contents/notebooks/00-welcome.ipynb", token)
        assert status == 200
        model = json.loads(body)
        assert model["type"] == "notebook" and model["content"]["cells"]
        status, body = get(f"{base}/lab/api/extensions", token)
        names = [ext["name"] for ext in json.loads(body)]
        assert "@jupyter-widgets/jupyterlab-manager" in names
        status, body = get(f"{base}/api/kernelspecs", token)
        assert "python3" in json.loads(body)["kernelspecs"]
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait(5)
