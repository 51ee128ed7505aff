"""What the tests of exercise checks assert about a verdict, written once.

    from exercise_asserts import fails_with, assert_passes, assert_what, stub

    assert_passes(nb10.check_diagnose(sol10.diagnose))          # every check passed
    assert_not_done(nb10.check_diagnose(stub))                  # "not done yet", no traceback
    fails_with(nb10.check_diagnose(wrong), "subclass")          # failed, the hint says so
    assert_what(verdict, "pending() was", absent=["accept()"])  # what happened, and not

A wrong answer is written as a learner would write it, in the test file; the words
asserted are the ones that name its real cause. ``notebook_cells`` reads a stored
notebook, for tests of what it shows (its solutions, the checks' stored verdicts).
(pytest puts ``tests/`` on the path, so tests import this module by its name.)
"""

from __future__ import annotations

import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def stub(*args, **kwargs):
    """An exercise cell as the notebook ships it."""
    raise NotImplementedError


def assert_passes(verdict) -> None:
    text = str(verdict)
    assert verdict.passed, text
    assert "all" in text and "✗" not in text, text


def assert_not_done(verdict) -> None:
    assert verdict.not_done and "not done yet" in str(verdict), str(verdict)


def fails_with(verdict, *hint_words: str, what=(), absent=()) -> None:
    """The verdict is a failure (shown with ✗) whose hint contains every one of
    ``hint_words`` and whose "what happened" contains every one of ``what``; none of
    ``absent`` is in either."""
    text = str(verdict)
    assert not verdict.passed, text
    assert "✗" in text, text
    for word in hint_words:
        assert word in verdict.hint, text
    if what or absent:
        assert_what(verdict, *what, absent=absent)


def assert_what(verdict, *words: str, absent=()) -> None:
    """The failure says what really happened (``words``), and not ``absent``."""
    failure = verdict.failure
    assert failure is not None, str(verdict)
    for word in words:
        assert word in failure.what, str(verdict)
    for word in absent:
        assert word not in failure.what and word not in failure.hint, str(verdict)


def notebook_cells(name: str) -> list[dict]:
    """The cells of ``notebooks/<name>`` as stored (sources and outputs)."""
    path = NOTEBOOKS / name
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def cell_source(cell: dict) -> str:
    return "".join(cell["source"])


def stored_text(cell: dict) -> str:
    """Everything a code cell's stored outputs show as text."""
    parts = []
    for output in cell.get("outputs", []):
        text = output.get("text") or output.get("data", {}).get("text/plain", "")
        parts.append("".join(text) if isinstance(text, list) else str(text))
    return "".join(parts)
