"""He et al. 2015's Figure 6 and Table 6, reproduced: plain and residual nets over depth.

    resnet-lab reproduce --dataset fashion_mnist --depths 20 32 44 56 110 --seeds 3 \\
        --steps 4000 --out runs/table6

`reproduce(grid, out)` trains every grid run not yet finished in `out` (see `runs.py` for the
recipe and the folder), one after another in this process, or as Ray tasks with `ray=True`
(`cluster.py`), then writes the report (`report.py`). Run again, it goes on where it was.
"""

from __future__ import annotations

import time
from pathlib import Path

from .cluster import run_on_ray
from .report import write_report
from .runs import (
    Grid,
    GridFolder,
    GridProgress,
    GridRun,
    record_outcome,
    resolve_dataset,
    run_with_retries,
    train_one,
)


def reproduce(grid: Grid, out: str | Path, *, ray: bool = False, ray_address: str = "auto",
              threads: int | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
              checkpoint_seconds: float = 300.0, quiet: bool = False) -> Path:
    """Train every grid run not yet finished in `out`, then write the report there; return
    the report's path. `ray=True` runs each grid run as a Ray task (`cluster.run_on_ray`); else
    they run here, one after another, with `threads` CPU threads (default: torch's)."""
    grid = resolve_dataset(grid)
    folder = GridFolder(Path(out))
    folder.claim(grid)
    todo = [cell for cell in grid.runs() if not folder.finished(cell)]
    progress = GridProgress(len(grid.runs()), len(grid.runs()) - len(todo), grid.steps, quiet)
    start = time.perf_counter()
    try:
        if ray:
            run_on_ray(grid, todo, folder, progress, address=ray_address,
                       cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run,
                       checkpoint_seconds=checkpoint_seconds)
        else:
            run_here(grid, todo, folder, progress, threads=threads,
                     checkpoint_seconds=checkpoint_seconds)
    finally:
        progress.close()
        folder.log_call({"seconds": round(time.perf_counter() - start, 1), "ray": ray,
                         "runs": len(todo) - sum(not folder.finished(c) for c in todo)})
        report = write_report(folder.root)
    return report


def run_here(grid: Grid, todo: list[GridRun], folder: GridFolder, progress: GridProgress,
             *, threads: int | None, checkpoint_seconds: float) -> None:
    """Each grid run in this process, one after another; one that raises is tried once more
    (from its checkpoint), then recorded as failed, and the grid goes on."""
    for cell in todo:
        progress.started(cell)
        outcome = run_with_retries(lambda c=cell: train_one(
            grid, c, threads=threads, checkpoint=folder.path("checkpoints", c),
            checkpoint_seconds=checkpoint_seconds, callbacks=[progress]), tries=2)
        record_outcome(folder, progress, cell, *outcome)
