"""Control runs beside a reproduced grid: grid runs trained again with one change.

Lesson 2 asks two things of the 110-layer pair. Does plain-110's failure hang on its warm-up,
which ended when one batch's error fell under 80%? `train_control` trains it again at a
tenth of the rate (after its warm-up it trains at the rate it warmed up at, for the whole
run). And the grid's warm-up rule gave ResNet-110 and plain-110 warm-ups of different
lengths, so their learning rates differed too: `train_pair` trains both again with one
fixed warm-up, so that the skip is all that differs.

    python -m resnet_lab.grid.control runs/table6 plain-110 --seed 0 --lr 0.01
    python -m resnet_lab.grid.control runs/table6 110 --seed 0 --warmup-steps 386

Each writes a `control-*.json` file into the grid's folder: each run's training error at half
the steps and at the end, test error, warm-up and setup. `control_lines` reads it back as the
lesson prints it, with what changed between the two runs.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from ..training.comparison import one_change
from ..training.recipes import with_lr, with_warmup_steps
from .findings import error_before, warmup_steps
from .runs import Grid, GridRun, resolve_dataset, train_one


def summary(history: dict) -> dict:
    """What the control's file keeps of a run: its setup, its training error just before the
    first lr drop (half the steps) and at the end, its final test error (%) and warm-up."""
    return {"name": history["name"], "setup": history["setup"],
            "train_error_half": round(error_before(history, 0.5), 2),
            "train_error_end": round(error_before(history, 1.0), 2),
            "test_error": round(100 * history["test_error"][-1], 2),
            "warmup_steps": warmup_steps(history), "steps": len(history["train_error"])}


def grid_run(folder: Path, run: str, seed: int) -> tuple[Grid, GridRun]:
    """The grid of `folder` and its run `run` of seed `seed` (a clear error if it has none)."""
    grid = resolve_dataset(Grid.from_dict(json.loads((folder / "grid.json").read_text())))
    cells = {(c.name, c.seed): c for c in grid.runs()}
    if (run, seed) not in cells:
        raise ValueError(f"run={run!r} with seed={seed} is not a run of the grid in {folder}; "
                         f"its runs: {', '.join(sorted({name for name, _ in cells}))}, "
                         f"seeds 0-{grid.seeds - 1}")
    return grid, cells[run, seed]


def write(path: Path, runs: dict[str, dict]) -> Path:
    path.write_text(json.dumps({"runs": runs}, indent=1, ensure_ascii=False))
    return path


def train_control(folder: str | Path, run: str, seed: int, lr: float,
                  threads: int | None = None) -> Path:
    """Train the grid run `run` (e.g. "plain-110") of seed `seed` again at learning rate `lr`,
    everything else the grid's; write its file beside the grid's runs and return its path."""
    folder = Path(folder)
    grid, cell = grid_run(folder, run, seed)
    finished = folder / "runs" / f"{cell.file}.json"
    if not finished.exists():
        raise FileNotFoundError(f"{finished} is missing: the control is compared with the "
                                "grid's own run, so finish the grid first")
    twin = json.loads(finished.read_text())["history"]
    control = train_one(grid, cell, threads=threads, recipe=with_lr(grid.recipe, lr))["history"]
    return write(folder / f"control-{cell.file}-lr{lr:g}.json",
                 {f"{run} (the grid's run)": summary(twin), "the control": summary(control)})


def train_pair(folder: str | Path, depth: int, seed: int, warmup: int,
               threads: int | None = None, workers: int = 1) -> Path:
    """Train the grid's ResNet and plain net of `depth` (seed `seed`: the same weights and
    batches as the grid's) again, both warmed up for exactly `warmup` steps, the rest the
    grid's recipe; `workers` > 1 trains them side by side in processes of their own."""
    folder = Path(folder)
    names = (f"ResNet-{depth}", f"plain-{depth}")
    (grid, first), (_, second) = (grid_run(folder, name, seed) for name in names)
    train = partial(train_one, grid, threads=threads, recipe=with_warmup_steps(grid.recipe, warmup))
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(train, (first, second)))
    else:
        results = [train(cell) for cell in (first, second)]
    return write(folder / f"control-{depth}-seed{seed}-warmup{warmup}.json",
                 {name: summary(r["history"]) for name, r in zip(names, results, strict=True)})


def control_lines(path: str | Path) -> list[str]:
    """A control's file as the lesson prints it: each run's errors and warm-up, then what
    changed between the two (`comparison.one_change`)."""
    runs = json.loads(Path(path).read_text())["runs"]
    lines = [f"{name}: training error {s['train_error_half']:.2f}% at half the steps -> "
             f"{s['train_error_end']:.2f}% at the end, test error {s['test_error']:.2f}%; "
             f"warm-up {s['warmup_steps']} of {s['steps']:,} steps" for name, s in runs.items()]
    setups = [s["setup"] for s in runs.values()]
    return [*lines, str(one_change(*setups, " vs ".join(runs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished `resnet-lab reproduce` folder")
    parser.add_argument("run", help='a grid run to repeat at --lr, e.g. "plain-110", or a '
                                    'depth, e.g. "110": its ResNet and plain net at --warmup-steps')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.run.isdigit() and args.warmup_steps:
        path = train_pair(args.folder, int(args.run), args.seed, args.warmup_steps,
                          args.threads, args.workers)
    elif not args.run.isdigit() and args.lr:
        path = train_control(args.folder, args.run, args.seed, args.lr, args.threads)
    else:
        parser.error("give a run with --lr (e.g. plain-110 --lr 0.01) or a depth with "
                     "--warmup-steps (e.g. 110 --warmup-steps 386)")
    print("\n".join(control_lines(path)))


if __name__ == "__main__":
    main()
