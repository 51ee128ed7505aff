"""One pinned list of packages, used by every way of installing the course.

binder/requirements.txt is the list. Binder installs it, the Makefile installs it into
.venv (through requirements-dev.txt, which includes it), and environment.yml's pip
section installs it for conda users. These tests fail when any of them drifts.
"""

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)")


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-r")):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        found[match.group(1).lower()] = match.group(2)
    return found


def test_every_requirement_is_pinned_and_the_key_ones_are_there():
    binder = pins(ROOT / "binder/requirements.txt")
    for name in ("jupyterlab", "notebook", "ipykernel", "ipywidgets", "nbval", "pytest"):
        assert name in binder, f"{name} missing from binder/requirements.txt"
    pins(ROOT / "requirements-dev.txt")


def test_dev_list_includes_the_one_list():
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r binder/requirements.txt" in lines
    dev = pins(ROOT / "requirements-dev.txt")
    assert not set(dev) & set(pins(ROOT / "binder/requirements.txt")), "pinned twice"


def test_installed_versions_match_the_list():
    wanted = pins(ROOT / "binder/requirements.txt") | pins(ROOT / "requirements-dev.txt")
    wrong = {}
    for name, pinned in wanted.items():
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have != pinned:
            wrong[name] = (pinned, have)
    assert not wrong, f"installed versions drift from the pinned list (pinned, installed): {wrong}"


def test_environment_yml_installs_the_same_list():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M), (
        "environment.yml must pin python=3.11"
    )
    assert re.search(r"^\s*-\s*pip\s*$", text, re.M)
    assert "-r binder/requirements.txt" in text
    # nothing else is installed there, so nothing can drift
    items = set(re.findall(r"^\s+-\s+(\S.*?)\s*$", text, re.M))
    allowed = {"conda-forge", "python=3.11", "pip", "pip:", "-r binder/requirements.txt", "-e ."}
    assert items <= allowed, f"environment.yml installs more than the list: {items - allowed}"


def test_binder_files():
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"
    assert not (ROOT / "binder/environment.yml").exists()
    post = (ROOT / "binder/postBuild").read_text()
    assert post.startswith("#!") and "set -e" in post and "pip install" in post
    assert (ROOT / "binder/postBuild").stat().st_mode & 0o111, "postBuild must be executable"
    apt = (ROOT / "binder/apt.txt").read_text().split()
    for package in ("netcat-openbsd", "telnet", "curl", "iproute2"):
        assert package in apt


def test_makefile_installs_the_list():
    makefile = (ROOT / "Makefile").read_text()
    assert "-r requirements-dev.txt" in makefile
    assert "$(PYTHON) -m venv $(VENV)" in makefile
