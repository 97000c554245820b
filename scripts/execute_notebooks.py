"""Execute lessons top to bottom in quick mode and store them in their committed form, so that
every figure can be seen on GitHub without running anything.

    .venv/bin/python scripts/execute_notebooks.py notebooks/0*.ipynb

Run it after changing a lesson (about 4 minutes for all five on 2 cores). It executes each
notebook from its own folder, as JupyterLab does, with RESNET_LAB_MODE=quick, and then applies
`strip_notebooks.strip` (text and PNG kept, widget state dropped). A live control's cell keeps
its pictures too (scripts/control_pictures.py), so a reader on GitHub sees them:

- tagged "snapshot:<name>": the control `<name>` as it starts, its readout and pictures;
- tagged "answer:<name>:<state>" (one tag per state, in the question's order): the control
  after `control_pictures.ANSWERS[state]` drove it into the state a predict-then-check
  question asks about, headed "The answer, ...". A tag may sit on the control's own cell or
  on a later code cell; the pictures go under the tagged cell.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))
import strip_notebooks  # noqa: E402
from control_pictures import ANSWERS  # noqa: E402

SNAPSHOT, ANSWER = "snapshot:", "answer:"   # tags "snapshot:explorer", "answer:explorer:relu-he"
HELPER_CODE = """import sys as _sys
_sys.path.insert(0, {scripts!r})
from control_pictures import show as _show
_show({name}, {state!r})"""


def pictures_asked(tags: list[str]) -> list[tuple[str, str | None]]:
    """A cell's tags -> the pictures they ask for, in order: (control, None) for its start,
    (control, state) for each answer. An answer's state must be one of `ANSWERS`."""
    asked: list[tuple[str, str | None]] = [(t[len(SNAPSHOT):], None) for t in tags
                                           if t.startswith(SNAPSHOT)]
    for tag in (t for t in tags if t.startswith(ANSWER)):
        name, _, state = tag[len(ANSWER):].partition(":")
        if not name or state not in ANSWERS:
            raise ValueError(f"tag {tag!r}: want 'answer:<control>:<state>' with a state from "
                             f"scripts/control_pictures.py: {', '.join(ANSWERS)}")
        asked.append((name, state))
    return asked


def add_snapshots(notebook) -> None:
    """After each cell tagged "snapshot:<name>" or "answer:<name>:<state>", one helper cell
    per picture it asks for (`control_pictures.show`), in the order of its tags."""
    for i in reversed(range(len(notebook.cells))):
        asked = pictures_asked(notebook.cells[i].metadata.get("tags", []))
        for name, state in reversed(asked):
            helper = nbformat.v4.new_code_cell(
                HELPER_CODE.format(scripts=str(SCRIPTS), name=name, state=state))
            helper.metadata["snapshot_helper"] = True
            notebook.cells.insert(i + 1, helper)


def fold_snapshots(notebook) -> None:
    """Each helper cell's outputs move under the tagged cell's own, and the helper goes: a
    reader without a kernel sees the control's pictures where the control is."""
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
