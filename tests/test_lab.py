"""`make lab` starts a JupyterLab that serves notebook 00 and has ipywidgets working."""

import json
import secrets
from pathlib import Path

from labserver import Lab, get

from helpers import netlab

ROOT = Path(__file__).resolve().parents[1]


def test_make_lab_serves_notebook_00_and_the_widget_extension():
    port = netlab.free_port()
    token = secrets.token_hex(16)
    args = f"--no-browser --port={port} --IdentityProvider.token={token} --ServerApp.port_retries=0"
    lab = Lab(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], port, token, cwd=ROOT)
    try:
        lab.wait_ready()
        # `jupyter lab notebooks/00-welcome.ipynb` serves the notebooks folder and opens 00
        status, body = get(f"{lab.base}/api/contents/00-welcome.ipynb", token)
        model = json.loads(body)
        assert status == 200 and model["type"] == "notebook" and model["content"]["cells"]
        status, body = get(f"{lab.base}/lab/tree/00-welcome.ipynb", token)
        assert status == 200 and b"JupyterLab" in body
        _, body = get(f"{lab.base}/lab/api/extensions", token)
        # listed as "jupyter-widgets-jupyterlab-manager" (the package name, mangled)
        widgets = [e for e in json.loads(body) if e["name"].endswith("jupyterlab-manager")]
        assert widgets and widgets[0]["enabled"], "the ipywidgets lab extension is not enabled"
        _, body = get(f"{lab.base}/api/kernelspecs", token)
        assert "python3" in json.loads(body)["kernelspecs"]
    finally:
        lab.stop()
