"""tools/system-tools.sh: the command-line tools the notebooks and tests run.

`make lab`, `make test` and .ci/run call it first. Checked here: every tool is present
on this machine (after `make test` installed them), every tool a notebook or a test runs
is in its table, no test skips over a missing tool, and how the script behaves, run
against stand-in tools on a PATH of our own: --check only reports, a missing tool is
installed with one apt-get call announced in one line, nothing is called when all are
there, and where it cannot install (no apt-get, not root and sudo asks a password, macOS)
it stops with the command to run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "system-tools.sh"
BASH = shutil.which("bash") or "/bin/bash"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
NOBODY = 65534  # the user that root runs the script as, to be someone who is not root

pytestmark = pytest.mark.skipif(
    os.name == "nt", reason="make and tools/system-tools.sh run in WSL on Windows"
)

# Command-line tools a networking notebook or test could run. A name found running in a
# notebook or a test must be in the script's table, or here with the reason it is not.
VOCABULARY = {
    "nc", "netcat", "ncat", "socat", "telnet", "curl", "wget", "ss", "netstat", "lsof",
    "iperf", "iperf3", "tcpdump", "tshark", "wireshark", "nmap", "dig", "nslookup",
    "openssl", "traceroute", "ping", "chromium", "chromium-browser", "wrk", "hping3",
}  # fmt: skip
NOT_INSTALLED = {
    "netstat": "named as the macOS and Windows way to see socket states (built in there)",
    "lsof": "named as the macOS way to find who holds a port (built in there)",
}
TOOL = "|".join(sorted(map(re.escape, VOCABULARY), key=len, reverse=True))
# `ss -tan` in prose, `!nc ...` in a cell, "nc" as the program of a call or an argv list
USES = [
    re.compile(rf"`({TOOL})[\s`]"),
    re.compile(rf"(?m)^\s*!({TOOL})\b"),
    re.compile(rf"""(?:which|run|Popen|check_output|check_call|call|run_client)\(\s*\[?\s*["']({TOOL})["'\s]"""),
    re.compile(rf"""\[\s*["']({TOOL})["']\s*,"""),
]  # fmt: skip
FENCE = re.compile(r"(?ms)^\s*```[^\n]*\n(.*?)^\s*```")
FIRST_WORD = re.compile(rf"(?m)^\s*(?:\$\s+)?({TOOL})\s")


def tools_used(text: str) -> set[str]:
    found = {m.group(1) for pattern in USES for m in pattern.finditer(text)}
    for block in FENCE.findall(text):  # commands shown in ``` blocks, one per line
        found |= set(FIRST_WORD.findall(block))
    return found


def notebook_sources() -> dict[str, str]:
    sources = {}
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        sources[path.name] = "\n".join("".join(cell["source"]) for cell in cells)
    return sources


def sources_of_tests():
    tests = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name != Path(__file__).name:  # the vocabulary above is not a use
            tests[path.name] = path.read_text(encoding="utf-8")
    return tests


def table() -> dict[str, dict]:
    out = subprocess.run(
        [BASH, str(SCRIPT), "--list"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    rows = {}
    for line in out.splitlines():
        command, package, brew, groups, why = line.split("\t")
        rows[command] = {"package": package, "brew": brew, "groups": groups.split(), "why": why}
    return rows


# ----------------------------------------------------------------------------------------
# This machine, the table, the callers


def test_every_tool_is_present():
    result = subprocess.run(
        [BASH, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_table_holds_the_course_tools():
    rows = table()
    packages = {command: row["package"] for command, row in rows.items()}
    assert packages == {
        "nc": "netcat-openbsd",
        "telnet": "telnet",
        "curl": "curl",
        "ss": "iproute2",
        "iperf3": "iperf3",
        "chromium": "chromium",
    }
    for command, row in rows.items():
        assert "test" in row["groups"], f"{command}: `make test` must install every tool"
        assert row["why"], f"{command}: the table must say who needs it"


def test_every_tool_a_notebook_runs_is_installed_by_make_lab():
    rows = table()
    lab = {command for command, row in rows.items() if "lab" in row["groups"]}
    used = {name: tools_used(text) for name, text in notebook_sources().items()}
    everything = set().union(*used.values())
    assert {"nc", "telnet", "ss"} <= everything, f"the scan finds too little: {used}"
    forgotten = {name: sorted(tools - lab - set(NOT_INSTALLED)) for name, tools in used.items()}
    forgotten = {name: tools for name, tools in forgotten.items() if tools}
    assert not forgotten, (
        f"notebooks run tools that tools/system-tools.sh does not install for `make lab` "
        f"(add them to its table, group lab): {forgotten}"
    )


def test_every_tool_a_test_runs_is_installed_by_make_test():
    listed = set(table())
    used = {name: tools_used(text) for name, text in sources_of_tests().items()}
    assert "chromium" in used["test_browser.py"], f"the scan finds too little: {used}"
    forgotten = {name: sorted(t - listed - set(NOT_INSTALLED)) for name, t in used.items()}
    forgotten = {name: tools for name, tools in forgotten.items() if tools}
    assert not forgotten, f"tests run tools that tools/system-tools.sh lacks: {forgotten}"


def test_no_test_skips_when_a_tool_is_missing():
    """A missing tool is a failure that says how to install it, never a quiet skip."""
    skip = re.compile(r"(?:skip|skipif|importorskip)\s*\((?:[^()]|\([^()]*\))*\)", re.S)
    offenders = []
    for name, text in sources_of_tests().items():
        for match in skip.finditer(text):
            if re.search(rf"which\(|\b(?:{TOOL})\b", match.group(0)):
                offenders.append(f"{name}: {match.group(0)[:80]}")
    assert not offenders, offenders


def test_binder_installs_what_the_notebooks_run():
    apt = set(re.sub(r"#.*", "", (ROOT / "binder/apt.txt").read_text()).split())
    lab = {row["package"] for row in table().values() if "lab" in row["groups"]}
    assert lab <= apt, f"binder/apt.txt lacks {sorted(lab - apt)}"


def test_make_and_ci_run_the_script_first():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"(?m)^test: system-tools\b", makefile)
    assert re.search(r"(?m)^lab: system-tools-lab\b", makefile)
    assert re.search(r"(?m)^system-tools:\n\t@bash tools/system-tools.sh test$", makefile)
    assert re.search(r"(?m)^system-tools-lab:\n\t@bash tools/system-tools.sh lab$", makefile)
    ci = re.sub(r"(?m)^\s*#.*\n", "", (ROOT / ".ci/run").read_text())
    assert "make --no-print-directory system-tools" in ci
    assert "apt-get" not in ci, ".ci/run must use `make system-tools`, not a list of its own"


# ----------------------------------------------------------------------------------------
# The script's behaviour, against stand-ins on a PATH of our own

NC_OPENBSD = "usage: nc [-46CDdFhklNnrStUuvZz] [-I length]\n\t-N\t\tShutdown the network socket after EOF on stdin"  # fmt: skip
NC_OTHERS = "[v1.10-47]\n\t-q secs\t\tquit after EOF on stdin\nUsage: nc [-iN] [-wN] [-l]"  # fmt: skip


def stub_text(body: str = "exit 0") -> str:
    return f"#!/bin/sh\n{body}\n"


def nc_body(text: str) -> str:
    return f"printf '%s\\n' '{text}'"


# Stands in for apt-get: logs how it was called, and "installs" a package as a stub
# command beside itself, copied from pool/ (plain sh, so that nobody can run it too).
FAKE_APT = r"""#!/bin/sh
here=${0%/*}
echo "${DEBIAN_FRONTEND:--} $*" >> "$here/apt.log"
installing=false
for arg in "$@"; do
    if [ "$arg" = install ]; then installing=true; continue; fi
    case $installing/$arg in
    false/* | */-*) continue ;;
    */netcat-openbsd) name=nc ;;
    */iproute2) name=ss ;;
    *) name=$arg ;;
    esac
    source="$here/pool/$name"
    [ -f "$source" ] || source="$here/pool/default"
    while IFS= read -r line; do printf '%s\n' "$line"; done < "$source" > "$here/$name"
    chmod 755 "$here/$name"
done
echo "Selecting previously unselected package chatter."
"""


class Bin:
    """A folder to be the whole PATH, holding stand-ins for the tools."""

    def __init__(self, path: Path):
        self.path = path
        path.chmod(0o755)  # mkdtemp makes it 0700; nobody must reach it too
        for name in ("env", "true"):  # what the script runs through sudo
            os.symlink(shutil.which(name) or f"/usr/bin/{name}", path / name)
        self.script = path / "system-tools.sh"
        shutil.copy(SCRIPT, self.script)  # readable by any user, as the repository may not be
        self.script.chmod(0o644)

    def stub(self, name: str, body: str = "exit 0") -> None:
        file = self.path / name
        file.write_text(stub_text(body))
        file.chmod(0o755)

    def nc(self, with_dash_n: bool = True) -> None:
        self.stub("nc", nc_body(NC_OPENBSD if with_dash_n else NC_OTHERS))

    def apt_get(self) -> None:
        self.stub("apt-get", FAKE_APT.removeprefix("#!/bin/sh\n"))
        os.symlink(shutil.which("chmod") or "/bin/chmod", self.path / "chmod")
        pool = self.path / "pool"
        pool.mkdir(mode=0o755)
        (pool / "nc").write_text(stub_text(nc_body(NC_OPENBSD)))
        (pool / "default").write_text(stub_text())

    @property
    def apt_calls(self) -> list[str]:
        log = self.path / "apt.log"
        return log.read_text().splitlines() if log.exists() else []

    def run(self, *args: str, user: int | None = None, **env: str):
        environment = {"PATH": str(self.path), "HOME": str(self.path), **env}
        extra = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
        return subprocess.run(
            [BASH, str(self.script), *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
            cwd=self.path,
            **extra,
        )


@pytest.fixture
def bin_dir():
    path = Path(tempfile.mkdtemp(prefix="system-tools-"))
    try:
        yield Bin(path)
    finally:
        shutil.rmtree(path)


def test_check_reports_what_is_missing_and_the_command(bin_dir):
    bin_dir.nc()
    for name in ("curl", "ss", "iperf3"):
        bin_dir.stub(name)
    bin_dir.apt_get()
    result = bin_dir.run("--check", "lab")
    assert result.returncode == 1
    assert result.stdout.startswith("system-tools: missing telnet (notebooks")
    assert "make system-tools" in result.stdout
    assert "\n    sudo apt-get install -y --no-install-recommends telnet\n" in result.stdout
    result = bin_dir.run("--check")
    assert result.returncode == 1
    assert "sudo apt-get install -y --no-install-recommends telnet chromium" in result.stdout
    assert "browser test" in result.stdout and "curl (" not in result.stdout
    assert bin_dir.apt_calls == [], "--check must not install"


def test_an_nc_without_dash_n_counts_as_missing(bin_dir):
    bin_dir.nc(with_dash_n=False)  # netcat-traditional's nc: notebook 04's `nc -N` fails
    for name in ("telnet", "curl", "ss", "iperf3"):
        bin_dir.stub(name)
    result = bin_dir.run("--check", "lab")
    assert result.returncode == 1 and "missing nc (" in result.stdout
    assert "install -y --no-install-recommends netcat-openbsd\n" in result.stdout


def test_installs_what_is_missing_in_one_line_then_calls_nothing(bin_dir):
    bin_dir.stub("curl")
    bin_dir.stub("ss")
    bin_dir.stub("sudo", '[ "$1" = -n ] && shift; exec "$@"')  # used when not root
    bin_dir.apt_get()
    result = bin_dir.run()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and not result.stderr, result.stdout + result.stderr
    assert re.fullmatch(
        r"system-tools: installing netcat-openbsd \(nc: .+\), telnet \(.+\), iperf3 \(.+\),"
        r" chromium \(.*browser test\) with apt-get",
        lines[0],
    ), lines[0]
    update, install = bin_dir.apt_calls
    assert update.startswith("noninteractive ") and update.endswith(" update")
    assert install.startswith("noninteractive ") and "-qq" in install
    packages = "netcat-openbsd telnet iperf3 chromium"
    assert install.endswith(f" install -y --no-install-recommends {packages}")
    # all there now (the new nc has -N): silent, and no apt-get call at all
    result = bin_dir.run()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(bin_dir.apt_calls) == 2
    result = bin_dir.run("--check")
    assert result.returncode == 0 and "all present" in result.stdout


def test_not_root_installs_through_passwordless_sudo(bin_dir):
    bin_dir.nc()
    for name in ("curl", "ss", "iperf3"):
        bin_dir.stub(name)
    bin_dir.stub("sudo", 'echo "sudo $*" >> "${0%/*}/sudo.log"; [ "$1" = -n ] && shift; exec "$@"')
    bin_dir.apt_get()
    # as root, the script installs directly: run it as nobody to be someone who needs sudo
    user = NOBODY if IS_ROOT else None
    if IS_ROOT:
        bin_dir.path.chmod(0o777)  # the stand-ins write their logs here
    result = bin_dir.run("lab", user=user)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == "system-tools: installing telnet (notebooks 01, 04) with apt-get\n"
    sudo = (bin_dir.path / "sudo.log").read_text().splitlines()
    assert sudo[0] == "sudo -n true", "sudo must be asked not to prompt for a password"
    assert all(
        line.startswith("sudo -n env DEBIAN_FRONTEND=noninteractive apt-get ") for line in sudo[1:]
    )
    assert [call.split()[-1] for call in bin_dir.apt_calls] == ["update", "telnet"]


def test_stops_with_the_command_when_there_is_no_apt_get(bin_dir):
    for name in ("curl", "ss", "iperf3"):
        bin_dir.stub(name)
    bin_dir.nc()
    result = bin_dir.run("lab")
    assert result.returncode == 1 and result.stdout == ""
    assert "missing telnet (notebooks" in result.stderr and "no apt-get" in result.stderr
    assert "    sudo apt-get install -y --no-install-recommends telnet\n" in result.stderr


def test_stops_with_the_command_when_sudo_asks_a_password(bin_dir):
    for name in ("curl", "ss", "iperf3"):
        bin_dir.stub(name)
    bin_dir.nc()
    bin_dir.apt_get()
    bin_dir.stub("sudo", 'echo "sudo: a password is required" >&2; exit 1')
    # as root, the script installs directly: run it as nobody to be someone who cannot
    result = bin_dir.run("lab", user=NOBODY if IS_ROOT else None)
    assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
    assert "not root, and sudo" in result.stderr
    assert "    sudo apt-get install -y --no-install-recommends telnet\n" in result.stderr
    assert bin_dir.apt_calls == []


def test_on_macos_it_names_the_homebrew_command(bin_dir):
    bin_dir.stub("nc")  # macOS's own nc; ss does not exist there and is not asked for
    bin_dir.stub("curl")
    bin_dir.apt_get()
    result = bin_dir.run(OSTYPE="darwin23")
    assert result.returncode == 1 and result.stdout == ""
    assert "Homebrew" in result.stderr and "ss (" not in result.stderr
    assert "    brew install telnet iperf3 && brew install --cask chromium\n" in result.stderr
    assert bin_dir.apt_calls == []
