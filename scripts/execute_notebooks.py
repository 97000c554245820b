"""Execute lessons top to bottom in quick mode and store them in their committed form, so that
every figure can be seen on GitHub without running anything.

    .venv/bin/python scripts/execute_notebooks.py notebooks/0*.ipynb

Run it after changing a lesson (about 4 minutes for all five on 2 cores). It executes each
notebook from its own folder, as JupyterLab does, with RESNET_LAB_MODE=quick, and then applies
`strip_notebooks.strip` (text and PNG kept, widget state dropped). A live control's cell
(tagged "snapshot:<name>") also keeps `<name>.snapshot()`: the control's readout and pictures
as it starts, so a reader on GitHub sees it too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import strip_notebooks  # noqa: E402

SNAPSHOT = "snapshot:"     # a control cell's tag "snapshot:explorer": picture `explorer` too
SNAPSHOT_CODE = """import matplotlib.pyplot as _plt
from IPython.display import display as _display

print("As it starts (run the notebook in JupyterLab to use it):")
for _item in {name}.snapshot():
    if isinstance(_item, str):
        print(_item)
    else:
        _display(_item)
        _plt.close(_item)"""


def add_snapshots(notebook) -> None:
    """After each cell tagged "snapshot:<name>", a helper cell that shows `<name>.snapshot()`
    (the control's readout and pictures as it starts)."""
    for i in reversed(range(len(notebook.cells))):
        tags = notebook.cells[i].metadata.get("tags", [])
        name = next((t[len(SNAPSHOT):] for t in tags if t.startswith(SNAPSHOT)), None)
        if name:
            helper = nbformat.v4.new_code_cell(SNAPSHOT_CODE.format(name=name))
            helper.metadata["snapshot_helper"] = True
            notebook.cells.insert(i + 1, helper)


def fold_snapshots(notebook) -> None:
    """Each helper cell's outputs move under the control's own, and the helper goes: a reader
    without a kernel sees the control's picture where the control is."""
    kept = []
    for cell in notebook.cells:
        if cell.metadata.get("snapshot_helper"):
            kept[-1].outputs.extend(cell.outputs)
        else:
            kept.append(cell)
    notebook.cells = kept


def execute(path: Path, timeout: int = 600) -> float:
    """Execute `path` in place (quick mode), with the pictures of its controls, and strip it;
    returns the seconds it took."""
    notebook = nbformat.read(path, as_version=4)
    add_snapshots(notebook)
    os.environ["RESNET_LAB_MODE"] = "quick"
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    fold_snapshots(notebook)
    clean = strip_notebooks.strip(json.loads(nbformat.writes(notebook)))
    path.write_text(strip_notebooks.dumps(clean))
    return seconds


def main(argv: list[str]) -> int:
    for name in argv:
        print(f"{name}: executed in {execute(Path(name)):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
