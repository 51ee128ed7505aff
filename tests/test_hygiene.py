"""Stored notebooks: executed in order, no stray errors, no machine paths, conventions kept."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
MACHINE_PATH = re.compile(r"(/root/|/home/\w+/|/tmp/|/work/|/Users/\w+/|C:\\\\Users\\\\|/srv/)")


def text_of(output) -> str:
    if "text" in output:
        text = output["text"]
    else:
        data = output.get("data", {})
        text = data.get("text/plain", "") or data.get("text/html", "")
    return "".join(text) if isinstance(text, list) else str(text)


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "00-welcome.ipynb" in names and "01-first-server-and-client.ipynb" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert re.fullmatch(r"\d\d-[a-z0-9]+(-[a-z0-9]+)*\.ipynb", path.name)
    problems = []
    expected = 1
    for index, cell in enumerate(nb["cells"], 1):
        if cell["cell_type"] != "code" or not "".join(cell["source"]).strip():
            continue
        source = "".join(cell["source"])
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("execution_count") != expected:
            problems.append(
                f"cell {index}: execution count {cell.get('execution_count')}, expected {expected}"
            )
        expected += 1
        raises = "NBVAL_RAISES_EXCEPTION" in source or {
            "raises-exception",
            "nbval-raises-exception",
        } & set(tags)
        for output in cell.get("outputs", []):
            if output["output_type"] == "error" and not raises:
                problems.append(f"cell {index}: stored error {output.get('ename')}")
            if MACHINE_PATH.search(text_of(output)):
                problems.append(f"cell {index}: machine path in output")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercise_headings(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    if path.name.startswith("00-"):
        return
    headings = [
        line
        for cell in nb["cells"]
        if cell["cell_type"] == "markdown"
        for line in "".join(cell["source"]).splitlines()
        if line.startswith("### Exercise")
    ]
    assert len(headings) >= 2, f"{path.name}: fewer than two '### Exercise N: ...' headings"
    for n, heading in enumerate(headings, 1):
        assert re.match(rf"### Exercise {n}: \S", heading), heading


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_cell_tagged_to_raise_does_raise(path):
    """A `raises-exception` tag on a cell that no longer raises hides nothing from nbval, but
    the browser test counts error outputs against the tags (and a reader is told to expect
    an error): the tag goes when the error goes."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    stale = [
        index
        for index, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        and "raises-exception" in cell.get("metadata", {}).get("tags", [])
        and not any(out["output_type"] == "error" for out in cell.get("outputs", []))
    ]
    assert not stale, f"{path.name}: cells tagged raises-exception that do not raise: {stale}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_notebook_cites_the_maintainers_pitfalls_file(path):
    """../shared/PITFALLS.md is the maintainers' list; learners do not have it, so a notebook
    says what a row says instead of citing "PITFALLS row N"."""
    assert "PITFALLS" not in path.read_text(encoding="utf-8"), path.name
