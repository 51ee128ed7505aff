"""`make lab` starts a JupyterLab at the repository root, with notebook 00 open, ipywidgets
working and JupyterLab's news pop-up off (the course's own config, jupyter/)."""

import contextlib
import json
import os
import re
import secrets
import socket
import threading
from pathlib import Path

from labserver import Lab, get

ROOT = Path(__file__).resolve().parents[1]
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def make_lab(tmp_path, port=None) -> Lab:
    """`make lab` as a learner runs it, on its own port, token and settings folders."""
    token = secrets.token_hex(16)
    # The runtime folder holds the page that opens the browser; own settings and workspaces
    # folders keep this machine's ~/.jupyter out of what is checked (and unchanged).
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )

    def command(port: int) -> list[str]:
        args = f"--no-browser --port={port} --IdentityProvider.token={token}"
        args += " --ServerApp.port_retries=0"
        return ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"]

    return Lab.start(command, token, port=port, cwd=ROOT, env=env)


def test_make_lab_serves_the_repository_with_notebook_00_and_the_widget_extension(tmp_path):
    lab = make_lab(tmp_path)
    token = lab.token
    try:
        # the file browser's root is the repository: notebooks/ and helpers/ are in reach
        status, body = get(f"{lab.base}/api/contents/notebooks/00-welcome.ipynb", token)
        model = json.loads(body)
        assert status == 200 and model["type"] == "notebook" and model["content"]["cells"]
        status, body = get(f"{lab.base}/api/contents/helpers", token)
        listing = {item["name"] for item in json.loads(body)["content"]}
        assert status == 200 and {"netlab", "exercises"} <= listing, listing
        # the browser is sent to notebook 00 (the page `jupyter lab` opens, or would open)
        [opener] = (tmp_path / "runtime").glob("jpserver-file-to-run-*-open.html")
        urls = set(re.findall(r'url=([^"?]+)', opener.read_text()))
        assert urls == {f"{lab.base}/lab/tree/notebooks/00-welcome.ipynb"}, urls
        status, body = get(f"{lab.base}/lab/tree/notebooks/00-welcome.ipynb", token)
        assert status == 200 and b"JupyterLab" in body
        # no news pop-up, no update check: the defaults the front end gets, with no user
        # setting on top of them
        _, body = get(f"{lab.base}/lab/api/settings/{NOTIFICATION}", token)
        setting = json.loads(body)
        defaults = {k: v.get("default") for k, v in setting["schema"]["properties"].items()}
        effective = defaults | setting["settings"]
        assert effective["fetchNews"] == "false" and effective["checkForUpdates"] is False, (
            f"{NOTIFICATION}: {effective} (jupyter/labconfig/default_setting_overrides.json)"
        )
        _, body = get(f"{lab.base}/lab/api/extensions", token)
        # listed as "jupyter-widgets-jupyterlab-manager" (the package name, mangled)
        widgets = [e for e in json.loads(body) if e["name"].endswith("jupyterlab-manager")]
        assert widgets and widgets[0]["enabled"], "the ipywidgets lab extension is not enabled"
        _, body = get(f"{lab.base}/api/kernelspecs", token)
        assert "python3" in json.loads(body)["kernelspecs"]
    finally:
        lab.stop()


def test_a_lab_whose_port_another_program_took_is_started_on_another(tmp_path):
    # What a second test run on the same machine did once: its echo server took the port
    # chosen for the lab before the lab bound it, and answered the readiness GET with the
    # GET itself (http.client.BadStatusLine). Here the port is taken for certain.
    holder = socket.create_server(("127.0.0.1", 0))
    holder.settimeout(0.2)
    taken = holder.getsockname()[1]
    done = threading.Event()

    def echo():
        while not done.is_set():
            try:
                conn, _ = holder.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.sendall(conn.recv(4096))

    echoer = threading.Thread(target=echo, daemon=True)
    echoer.start()
    try:
        lab = make_lab(tmp_path, port=taken)
        try:
            assert lab.taken == [taken] and lab.port != taken
            status, body = get(f"{lab.base}/api/contents/notebooks/00-welcome.ipynb", lab.token)
            assert status == 200 and json.loads(body)["type"] == "notebook"
        finally:
            lab.stop()
    finally:
        done.set()
        echoer.join(5)
        holder.close()
