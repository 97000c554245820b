"""Strip notebook outputs before committing; keep only the verdict cells' outputs.

    python scripts/strip_notebooks.py notebooks/*.ipynb          # strip in place
    python scripts/strip_notebooks.py --check notebooks/*.ipynb  # exit 1 if any needs it

Cells marked `# NBVAL_CHECK_OUTPUT` keep their text output: nbval compares it (numbers
sanitized, see tests/nbval-sanitize.cfg), so a verdict that turns "NOT shown" fails the tests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KEEP = "# NBVAL_CHECK_OUTPUT"


def strip(notebook: dict) -> dict:
    """The notebook without outputs, execution counts or run metadata, but verdict outputs."""
    for cell in notebook["cells"]:
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k == "tags"}
        cell.pop("id", None)
        if cell["cell_type"] != "code":
            continue
        keep = KEEP in "".join(cell["source"])
        cell["outputs"] = [{"name": o["name"], "output_type": "stream", "text": o["text"]}
                           for o in cell["outputs"]
                           if keep and o.get("output_type") == "stream"]
        # nbval rejects stored outputs of a cell that was never run: give kept ones a fixed count
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
