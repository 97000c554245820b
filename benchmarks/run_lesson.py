"""Execute one lesson top to bottom and report: part 4 of gpu_check.py.

    python benchmarks/run_lesson.py NOTEBOOK [--mode full] [--cell-timeout 300]

Runs a copy in memory (the notebook on disk is untouched), from the notebook's folder, with
RESNET_LAB_MODE set. Prints the wall time, every VERDICT line, the three slowest cells and the
first error. Exits 1 when a cell fails or a verdict says "NOT shown".
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def outputs_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--mode", default="full", choices=("quick", "full"))
    parser.add_argument("--cell-timeout", type=int, default=300)
    args = parser.parse_args(argv)
    os.environ["RESNET_LAB_MODE"] = args.mode
    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(notebook, timeout=args.cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(args.notebook.parent)}})
    start, error = time.perf_counter(), ""
    try:
        client.execute()
    except CellExecutionError as err:
        error = str(err).strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    verdicts = [line for cell in notebook.cells for line in outputs_text(cell).splitlines()
                if line.startswith("VERDICT")]
    timed = [(cell.get("metadata", {}).get("execution", {}), i)
             for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    print(*verdicts, sep="\n")
    print(f"slowest cells: {slowest(timed)}")
    failed = error or any("NOT shown" in v for v in verdicts)
    print(f"{args.notebook.name} ({args.mode}): {seconds:.0f} s, {len(verdicts)} verdicts, "
          + (f"FAILED: {error or 'a verdict is NOT shown'}" if failed else "ok"))
    return 1 if failed else 0


def slowest(timed: list[tuple[dict, int]]) -> str:
    """The three slowest cells, from nbclient's execution timestamps."""
    seconds = []
    for stamps, i in timed:
        begin, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if begin and end:
            span = datetime.fromisoformat(end.rstrip("Z")) - datetime.fromisoformat(
                begin.rstrip("Z"))
            seconds.append((span.total_seconds(), i))
    return ", ".join(f"cell {i} {s:.0f} s" for s, i in sorted(seconds, reverse=True)[:3])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
