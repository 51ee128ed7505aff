"""conftest.py gives every pytest-xdist worker a port of its own for netlab's "5000", and
the kernels that tests start talk over IPC.

The controller imports conftest.py before it starts the workers, and they inherit its
environment: once, all four workers shared one port, and one worker's notebook server
lost its bind() to another worker's (a CI failure in test_rerun). This runs a real
``pytest -n 3`` whose tests report the port each worker got.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REPORT = """
import os

def test_report_0(): print("PORT", os.environ["PYTEST_XDIST_WORKER"], os.environ["NETLAB_PORT"])
def test_report_1(): print("PORT", os.environ["PYTEST_XDIST_WORKER"], os.environ["NETLAB_PORT"])
def test_report_2(): print("PORT", os.environ["PYTEST_XDIST_WORKER"], os.environ["NETLAB_PORT"])
"""


def run_workers(tmp_path, **env) -> dict[str, str]:
    (tmp_path / "test_report.py").write_text(REPORT, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NETLAB_PORT", "PYTEST_"))}
    # only xdist and conftest.py: other plugins (nbval) take seconds to import
    environ.update(env, PYTHONPATH=str(ROOT), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "xdist",
            "-p",
            "conftest",
            "-p",
            "no:cacheprovider",
            "-n",
            "3",
            "--dist",
            "each",
            "-rP",
            "-q",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=environ,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    ports = {}
    for line in result.stdout.splitlines():
        if line.startswith("PORT "):
            _, worker, port = line.split()
            ports[worker] = port
    assert sorted(ports) == ["gw0", "gw1", "gw2"], result.stdout[-3000:]
    return ports


def test_each_worker_gets_its_own_port(tmp_path):
    ports = run_workers(tmp_path)
    assert len(set(ports.values())) == 3, ports
    assert all(20000 <= int(port) < 30000 for port in ports.values()), ports


def test_a_port_named_by_whoever_runs_pytest_is_kept(tmp_path):
    ports = run_workers(tmp_path, NETLAB_PORT="23456")
    assert set(ports.values()) == {"23456"}, ports


def test_kernels_that_tests_start_talk_over_ipc():
    """conftest.py moves the kernels of nbval, nbclient and jupyter_client to IPC: a TCP
    kernel's ports are chosen by a probe that another worker's kernel can race."""
    import psutil
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel()
    try:
        client = km.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        client.stop_channels()
        info = km.get_connection_info()
        assert info["transport"] == "ipc" and info["ip"].startswith(tempfile.gettempdir())
        channels = {info[f"{name}_port"] for name in ("shell", "iopub", "stdin", "control", "hb")}
        tcp_ports = {
            c.laddr.port
            for c in psutil.Process(km.provisioner.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert not channels & tcp_ports, (channels, tcp_ports)
    finally:
        km.shutdown_kernel(now=True)


def test_a_port_named_by_a_person_is_explained_and_the_tests_own_is_not(monkeypatch):
    """A hub administrator's NETLAB_PORT: netlab's line says why the port is not 5000
    (a walkthrough on a hub saw 21101 and no reason). The tests' own port, set by
    conftest.py, gives no reason, so stored outputs stay the same under the tests."""
    from helpers.netlab import _ports

    monkeypatch.setenv("NETLAB_PORT", "21101")
    monkeypatch.delenv("NETLAB_PORT_FROM", raising=False)
    assert _ports.preferred_reason() == "NETLAB_PORT gives you port 21101 instead of 5000"
    monkeypatch.setenv("NETLAB_PORT_FROM", "conftest.py")
    assert _ports.preferred_reason() is None


LEFT_BEHIND = """
import os, sys
sys.path.insert(0, {root!r})
import conftest  # noqa: F401  (what pytest imports first)
from jupyter_client.manager import KernelManager

km = KernelManager(kernel_name="python3")
km.start_kernel()
client = km.client()
client.start_channels()
client.wait_for_ready(timeout=60)
code = "import tempfile; keys = tempfile.TemporaryDirectory(prefix='nb10-'); print(keys.name)"
reply = []
client.execute(code)
while True:
    msg = client.get_iopub_msg(timeout=30)
    if msg["msg_type"] == "stream":
        reply.append(msg["content"]["text"])
    if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle" and reply:
        break
client.stop_channels()
km.shutdown_kernel(now=True)  # as nbval ends every notebook's kernel: SIGKILL
folder = "".join(reply).strip()
print("LEFT", folder, os.path.isdir(folder))
"""


def test_what_a_killed_kernel_leaves_in_its_tmp_goes_when_the_run_ends(tmp_path):
    """nbval kills each notebook's kernel, so notebook 10's TemporaryDirectory of keys was
    never removed: one folder of private keys in /tmp per run (40 after a day's runs).
    conftest.py gives kernels a TMPDIR inside its own folder, removed when the run ends."""
    script = tmp_path / "left_behind.py"
    script.write_text(LEFT_BEHIND.format(root=str(ROOT)), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("LEFT "))
    _, folder, existed = line.split()
    assert existed == "True", line  # the kill left it, as it leaves notebook 10's keys
    assert not folder.startswith(os.path.join(tempfile.gettempdir(), "nb10-")), folder
    assert not os.path.exists(folder), f"{folder} is still there after the run ended"
