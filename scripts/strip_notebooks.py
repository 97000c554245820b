"""Put notebooks into the form they are committed in: readable on GitHub, small, reproducible.

    python scripts/strip_notebooks.py notebooks/*.ipynb          # rewrite in place
    python scripts/strip_notebooks.py --check notebooks/*.ipynb  # exit 1 if any needs it

What stays: printed text and pictures (PNG), so a reader sees every figure of an executed lesson
without running anything. What goes: widget state (megabytes of it), HTML and JavaScript
outputs, errors, cell ids and run metadata. A live widget leaves a one-line note in its place.
The app notebook and unexecuted notebooks keep no outputs at all, except the verdicts.

Cells tagged `nbval-check-output` (the verdicts) are the ones nbval compares (numbers
sanitized, see tests/nbval-sanitize.cfg), so a verdict that turns "NOT shown" fails the
tests; nbval ignores every other stored output (`--nbval-lax`).
`scripts/execute_notebooks.py` re-executes lessons in quick mode and stores them in this form.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CHECKED = "nbval-check-output"      # nbval's cell tag: compare this cell's output
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "(a live widget: run the notebook in JupyterLab to use it)\n"
# tqdm's text form, e.g. "training:  40%|####  | 2/5 [00:01<00:01, 2.0step/s]"
TQDM_BAR = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")


def clean_output(output: dict) -> dict | None:
    """The committed form of one output: text and PNG only, or None to drop it."""
    kind = output.get("output_type")
    if kind == "stream":
        return {"name": output["name"], "output_type": "stream", "text": output["text"]}
    if kind not in ("display_data", "execute_result"):
        return None                                       # errors, and anything unknown
    data = output.get("data", {})
    if WIDGET in data and TQDM_BAR.search("".join(data.get("text/plain", ""))):
        return None                        # a tqdm bar: gone after training in a live session
    if WIDGET in data:
        return {"name": "stdout", "output_type": "stream", "text": WIDGET_NOTE}
    if "image/png" in data:
        return {"data": {"image/png": data["image/png"]}, "metadata": {},
                "output_type": "display_data"}
    if "text/plain" in data:
        return {"data": {"text/plain": data["text/plain"]}, "metadata": {},
                "output_type": "display_data"}
    return None


def strip(notebook: dict) -> dict:
    """The notebook in its committed form (see the module's docstring)."""
    for cell in notebook["cells"]:
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k == "tags"}
        cell.pop("id", None)
        if cell["cell_type"] != "code":
            continue
        outputs = [clean_output(o) for o in cell["outputs"]]
        cell["outputs"] = [o for o in outputs if o is not None]
        if CHECKED in cell["metadata"].get("tags", []):       # a verdict: its text only
            cell["outputs"] = [o for o in cell["outputs"] if o["output_type"] == "stream"]
        # nbval rejects stored outputs of a cell that was never run: give them a fixed count
        cell["execution_count"] = 1 if cell["outputs"] else None
    notebook["metadata"] = {k: v for k, v in notebook["metadata"].items()
                            if k in ("kernelspec", "language_info")}
    notebook["metadata"].get("language_info", {}).pop("version", None)
    notebook["nbformat"], notebook["nbformat_minor"] = 4, 4
    return notebook


def dumps(notebook: dict) -> str:
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    dirty = []
    for path in (Path(a) for a in argv if a != "--check"):
        text = path.read_text()
        clean = dumps(strip(json.loads(text)))
        if clean != text:
            dirty.append(path)
            if not check:
                path.write_text(clean)
    if dirty:
        print(("needs stripping: " if check else "stripped: ") + ", ".join(map(str, dirty)))
    return 1 if check and dirty else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
