"""The solutions shown as text in the notebooks (the <details> blocks) are the reference ones.

Every notebook NN-*.ipynb whose reference module helpers/exercises/solutions/nbNN.py exists
is checked (a notebook that lands later is picked up by that rule), and a notebook that
shows solutions must have such a module.

Each ```python block in a <details> cell must be, after stripping, exactly the source of the
functions it defines, as in helpers/exercises/solutions/nbNN.py (inspect.getsource), joined by
two blank lines; a module-level constant it shows is the constant's line(s) in that module.
A block must also show the module-level helpers its functions use, unless another block of
the same notebook shows them (the function of an earlier exercise).
"""

import ast
import difflib
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "helpers" / "exercises" / "solutions"
ALL_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
NOTEBOOKS = [p for p in ALL_NOTEBOOKS if (SOLUTIONS / f"nb{p.name[:2]}.py").exists()]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def shown_blocks(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    blocks = []
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and "<details>" in source:
            found = BLOCK.findall(source)
            assert found, f"{path.name}: a <details> cell without a ```python block"
            blocks += found
    return blocks


def reference_segments(module) -> dict[str, str]:
    """Name -> source of each top-level function, class and simple constant of ``module``."""
    source = inspect.getsource(module)
    lines = source.splitlines()
    segments = {}
    for node in ast.parse(source).body:
        if isinstance(node, DEFS):
            segments[node.name] = inspect.getsource(getattr(module, node.name)).strip()
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):  # whole lines: keeps a trailing comment
                    segments[target.id] = "\n".join(lines[node.lineno - 1 : node.end_lineno])
        elif isinstance(node, ast.Import | ast.ImportFrom):
            text = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            for alias in node.names:
                segments[alias.asname or alias.name.split(".")[0]] = text
    return segments


def top_level_names(node) -> list[str]:
    if isinstance(node, DEFS):
        return [node.name]
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [t.id for t in targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [alias.asname or alias.name.split(".")[0] for alias in node.names]
    return []


def bound_anywhere(tree) -> set[str]:
    """Every name the block binds, nested functions and locals included."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, DEFS):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def imported_by_code_cells(path: Path) -> set[str]:
    """The names that the import statements of the notebook's code cells bind."""
    names = set()
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = compile(
                "".join(cell["source"]),
                path.name,
                "exec",
                flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
        except SyntaxError:
            continue  # a cell with IPython magics: it imports nothing a block relies on
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names.update(top_level_names(node))
    return names


CASES = [
    pytest.param(path, index, block, id=f"{path.name[:2]}-block{index + 1}")
    for path in NOTEBOOKS
    for index, block in enumerate(shown_blocks(path))
]


def test_the_notebooks_show_solutions():
    numbers = {p.name[:2] for p in NOTEBOOKS}
    assert {"01", "02", "03", "04", "05", "06", "07", "08", "10", "11"} <= numbers, numbers
    for path in NOTEBOOKS:  # two or more exercises in each
        assert len(shown_blocks(path)) >= 2, path.name


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name[:2])
def test_a_notebook_that_shows_solutions_has_reference_solutions(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    shows = any(
        c["cell_type"] == "markdown"
        and "<details>" in "".join(c["source"])
        and BLOCK.search("".join(c["source"]))
        for c in cells
    )
    module = SOLUTIONS / f"nb{path.name[:2]}.py"
    assert not shows or module.exists(), f"{path.name} shows solutions, {module.name} is missing"


@pytest.mark.parametrize("path, index, block", CASES)
def test_shown_solution_is_the_reference(path, index, block):
    module = importlib.import_module(f"helpers.exercises.solutions.nb{path.name[:2]}")
    reference = reference_segments(module)
    tree = ast.parse(block)
    names = [name for node in tree.body for name in top_level_names(node)]
    functions = [node.name for node in tree.body if isinstance(node, DEFS)]
    assert functions, f"{path.name}, block {index + 1}: defines no function"
    unknown = [name for name in names if name not in reference]
    assert not unknown, f"{path.name}, block {index + 1}: not in {module.__name__}: {unknown}"

    expected = "\n\n\n".join(dict.fromkeys(reference[name] for name in names)).strip()
    diff = "\n".join(
        difflib.unified_diff(
            block.strip().splitlines(),
            expected.splitlines(),
            f"{path.name}, block {index + 1}",
            module.__name__,
            lineterm="",
        )
    )
    assert block.strip() == expected, f"the shown solution differs:\n{diff}"

    # the module-level helpers it uses are shown here or in another block of the notebook,
    # or imported by the notebook's own code (a learner who pastes the block has them)
    shown_elsewhere = {
        name
        for number, other in enumerate(shown_blocks(path))
        if number != index
        for node in ast.parse(other).body
        for name in top_level_names(node)
    } | imported_by_code_cells(path)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    helpers = {
        name
        for name in used - bound_anywhere(tree) - shown_elsewhere
        if name in reference and not isinstance(getattr(module, name), type(inspect))
    }
    assert not helpers, f"{path.name}, block {index + 1}: uses {sorted(helpers)}, not shown"
