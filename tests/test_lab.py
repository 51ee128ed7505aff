"""`make lab` starts a JupyterLab at the repository root, with notebook 00 open, ipywidgets
working and JupyterLab's news pop-up off (the course's own config, jupyter/)."""

import json
import os
import re
import secrets
from pathlib import Path

from labserver import Lab, get

from helpers import netlab

ROOT = Path(__file__).resolve().parents[1]
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def test_make_lab_serves_the_repository_with_notebook_00_and_the_widget_extension(tmp_path):
    port = netlab.free_port()
    token = secrets.token_hex(16)
    args = f"--no-browser --port={port} --IdentityProvider.token={token} --ServerApp.port_retries=0"
    # The runtime folder holds the page that opens the browser; own settings and workspaces
    # folders keep this machine's ~/.jupyter out of what is checked (and unchanged).
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    command = ["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"]
    lab = Lab(command, port, token, cwd=ROOT, env=env)
    try:
        lab.wait_ready()
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
