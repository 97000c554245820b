"""A control run beside a reproduced grid: one of its runs trained again with one change, a
lower learning rate. Lesson 2 asks whether plain-110's failure hangs on its warm-up, which
ended when one batch's error fell under 80%: trained at a tenth of the rate, after its
warm-up it trains at the rate it warmed up at, for the whole run.

    python -m resnet_lab.grid.control runs/table6 plain-110 --seed 0 --lr 0.01

`train_control` trains it (the grid's data, weights, batches and recipe, at `lr`) and writes
`control-<run>-lr<lr>.json` into the grid's folder: the control's and the grid run's training
error at half the steps and at the end, test error, warm-up and setups. `control_lines`
reads that file back as the lesson prints it, with what changed between the two.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..training.comparison import one_change
from ..training.recipes import with_lr
from .findings import error_before, warmup_steps
from .runs import Grid, resolve_dataset, train_one


def summary(history: dict) -> dict:
    """What the control's file keeps of a run: its setup, its training error just before the
    first lr drop (half the steps) and at the end, its final test error (%) and warm-up."""
    return {"name": history["name"], "setup": history["setup"],
            "train_error_half": round(error_before(history, 0.5), 2),
            "train_error_end": round(error_before(history, 1.0), 2),
            "test_error": round(100 * history["test_error"][-1], 2),
            "warmup_steps": warmup_steps(history), "steps": len(history["train_error"])}


def train_control(folder: str | Path, run: str, seed: int, lr: float,
                  threads: int | None = None) -> Path:
    """Train the grid run `run` (e.g. "plain-110") of seed `seed` again at learning rate `lr`,
    everything else the grid's; write its file beside the grid's runs and return its path."""
    folder = Path(folder)
    grid = resolve_dataset(Grid.from_dict(json.loads((folder / "grid.json").read_text())))
    cells = {(c.name, c.seed): c for c in grid.runs()}
    if (run, seed) not in cells:
        raise ValueError(f"run={run!r} with seed={seed} is not a run of the grid in {folder}; "
                         f"its runs: {', '.join(sorted({name for name, _ in cells}))}, "
                         f"seeds 0-{grid.seeds - 1}")
    cell = cells[run, seed]
    finished = folder / "runs" / f"{cell.file}.json"
    if not finished.exists():
        raise FileNotFoundError(f"{finished} is missing: the control is compared with the "
                                "grid's own run, so finish the grid first")
    twin = json.loads(finished.read_text())["history"]
    control = train_one(grid, cell, threads=threads, recipe=with_lr(grid.recipe, lr))["history"]
    path = folder / f"control-{cell.file}-lr{lr:g}.json"
    path.write_text(json.dumps({"grid_run": summary(twin), "control": summary(control)},
                               indent=1, ensure_ascii=False))
    return path


def control_lines(path: str | Path) -> list[str]:
    """The control's file as the lesson prints it: each run's errors and warm-up, then what
    changed between the grid's run and the control (`comparison.one_change`)."""
    saved = json.loads(Path(path).read_text())
    runs = {f"{saved['grid_run']['name']} (the grid's run)": saved["grid_run"],
            "the control": saved["control"]}
    lines = [f"{name}: training error {s['train_error_half']:.2f}% at half the steps -> "
             f"{s['train_error_end']:.2f}% at the end, test error {s['test_error']:.2f}%; "
             f"warm-up {s['warmup_steps']} of {s['steps']:,} steps" for name, s in runs.items()]
    setups = [s["setup"] for s in runs.values()]
    return [*lines, str(one_change(*setups, " vs ".join(runs)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished `resnet-lab reproduce` folder")
    parser.add_argument("run", help='the grid run to repeat, e.g. "plain-110"')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    path = train_control(args.folder, args.run, args.seed, args.lr, args.threads)
    print("\n".join(control_lines(path)))


if __name__ == "__main__":
    main()
