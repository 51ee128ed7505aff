"""Learners re-run cells: every cell of notebooks 00 and 01, run twice in one kernel,
raises nothing except the cells tagged ``raises-exception`` (nbclient checks the tag)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["00-welcome.ipynb", "01-first-server-and-client.ipynb"])
def test_all_cells_twice_in_one_kernel(name):
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # CellExecutionError on an untagged error
    errors = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and any(o.output_type == "error" for o in cell.outputs)
        and "raises-exception" not in cell.metadata.get("tags", [])
    ]
    assert errors == []
