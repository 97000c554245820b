"""The pieces of a reproduced grid (`resnet_lab.grid.reproduce` puts them together).

A *grid run* is one (kind, depth, seed). `train_one` trains it with He et al.'s §4.2 recipe
scaled to `steps` (batch 128, SGD with momentum 0.9 and weight decay 1e-4, lr 0.1 ÷ 10 at 50%
and 75% of the steps, ResNet-110 warmed up at 0.01 until its training error is under 80%,
padding by an eighth of the side (4 pixels at 32×32), random crop and flip). It is the only
training code of the grid, in this process and in a Ray task alike. The plain and residual
nets of one depth and seed start from the same weights and see the same batches.

The output folder holds everything, so that the same command run again goes on where it was:

    grid.json               the grid (a different grid in the same folder is refused)
    calls.json              each call's wall time
    runs/<run>.json         each finished run's history, written as soon as it finishes
    failed/<run>.json       a run that raised twice, with its error (the next call tries again)
    checkpoints/<run>.pt    an unfinished run, saved every few minutes (gone when it finishes)
    report.md, report.html, figure6.png     written by `resnet_lab.grid.report`
"""

from __future__ import annotations

import functools
import json
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from ..nets.checks import blocks_per_stage, check_choice, check_count, depth_rule
from ..nets.models import named_net
from ..nets.paper import HE2015_PLAIN_NOT_DRAWN, HE2015_TABLE6
from ..training import data as datasets
from ..training.callbacks import Callback
from ..training.checkpoint import Checkpoint
from ..training.recipes import RECIPES, Recipe
from ..training.run import Run
from ..training.train import fit


class GridRun(NamedTuple):
    """One cell of the grid: "plain" or "ResNet", a depth and a seed."""

    kind: str
    depth: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.depth}"

    @property
    def file(self) -> str:
        return f"{self.name}-seed{self.seed}"


@dataclass(frozen=True)
class Grid:
    """What to train. `depths` are the ResNets' (6n+2; default: those of He et al.'s Table 6);
    `plain_depths` the plain nets' (default: those below 110, as He et al.'s Fig. 6 leaves
    plain-110 out: `paper.HE2015_PLAIN_NOT_DRAWN`). `dataset`
    "auto" takes CIFAR-10 when it is in the data folder, else Fashion-MNIST, else the synthetic
    set; `size`/`n_train` shrink the images and the training set; `width` is the first stage's
    channels (the paper: 16). Tests run every `steps // 10` steps on the whole test set."""

    depths: tuple[int, ...] = tuple(HE2015_TABLE6)
    plain_depths: tuple[int, ...] | None = None
    seeds: int = 2
    steps: int = 4000
    dataset: str = "auto"
    size: int | None = None
    n_train: int | None = None
    width: int = 16
    batch_size: int = 128
    augment: bool = True
    recipe: str = "he2015"

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, ("auto", *datasets.DATASETS))
        object.__setattr__(self, "depths", tuple(self.depths))
        if self.plain_depths is None:
            object.__setattr__(self, "plain_depths", tuple(d for d in self.depths
                                                             if d < HE2015_PLAIN_NOT_DRAWN))
        object.__setattr__(self, "plain_depths", tuple(self.plain_depths))
        for arg in ("depths", "plain_depths"):
            for depth in getattr(self, arg):
                try:
                    blocks_per_stage(depth, "basic")
                except ValueError:
                    raise ValueError(f"{arg} has {depth!r}, which is not allowed; "
                                     f"{depth_rule('basic')}") from None
        if not self.depths and not self.plain_depths:
            raise ValueError("depths=() and plain_depths=() is not allowed; give a depth")
        for arg in ("seeds", "steps", "width", "batch_size"):
            check_count(arg, getattr(self, arg))
        check_choice("recipe", self.recipe, tuple(RECIPES))
        check_count("size", self.size, allow_none=True)
        check_count("n_train", self.n_train, allow_none=True)

    def runs(self) -> list[GridRun]:
        """Every grid run, deepest first (the long ones start early when runs go in parallel)."""
        cells = [GridRun("plain", d, s) for d in self.plain_depths for s in range(self.seeds)]
        cells += [GridRun("ResNet", d, s) for d in self.depths for s in range(self.seeds)]
        return sorted(cells, key=lambda r: (-r.depth, r.seed, r.kind))

    @property
    def eval_every(self) -> int:
        return max(1, self.steps // 10)

    def grows(self, saved: Grid) -> bool:
        """Whether this grid is `saved` with more depths or seeds and nothing else changed:
        every run of `saved` is one of this grid's, trained alike, so a folder may grow."""
        same = {k: v for k, v in asdict(saved).items()
                if k not in ("depths", "plain_depths", "seeds")}
        return (same == {k: getattr(self, k) for k in same} and self.seeds >= saved.seeds
                and set(self.depths) >= set(saved.depths)
                and set(self.plain_depths) >= set(saved.plain_depths))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Grid:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def resolve_dataset(grid: Grid) -> Grid:
    """The grid with "auto" replaced by the first dataset that is on this machine (nothing is
    downloaded), with a printed line saying which and why."""
    if grid.dataset != "auto":
        return grid
    found, why = datasets.first_loadable(datasets.BEST_FIRST, n_train=1, n_test=1)
    print(f"data: {found.name} ({why})")
    return replace(grid, dataset=found.name)


@functools.lru_cache(maxsize=2)
def grid_data(grid: Grid) -> datasets.Dataset:
    """The grid's dataset, loaded once per process (every run of the grid shares it)."""
    if grid.dataset == "synthetic":
        return datasets.synthetic(grid.n_train or 20_000, 2_000, size=grid.size or 32, seed=0)
    options = {"size": grid.size} if grid.size else {}
    return datasets.load(grid.dataset, n_train=grid.n_train, download=False, **options)


def train_one(grid: Grid, cell: GridRun, *, threads: int | None = None,
              checkpoint: Path | None = None, checkpoint_seconds: float = 300.0,
              callbacks: Sequence[Callback] = (), recipe: Recipe | None = None) -> dict:
    """Train one grid run and return its result: the history (plain numbers) and where and how
    it ran. With `checkpoint`, it resumes from that file when it exists and saves there every
    `checkpoint_seconds`. `threads` sets torch's CPU threads for the run (restored after).
    `recipe`: another recipe than the grid's, for a control run (`control.py`).
    A Ctrl-C ends it with KeyboardInterrupt (the checkpoint stays for the next call)."""
    images = grid_data(grid)
    model = named_net(cell.name, width=grid.width, seed=cell.seed, **images.net_options)
    saver = [Checkpoint(checkpoint, checkpoint_seconds)] if checkpoint else []
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        history = fit(model, images, name=cell.name, steps=grid.steps,
                      batch_size=grid.batch_size, recipe=recipe or grid.recipe, seed=cell.seed,
                      augment=grid.augment, eval_every=grid.eval_every, eval_samples=None,
                      grad_every=max(1, grid.steps // 50), callbacks=[*saver, *callbacks])
    finally:
        torch.set_num_threads(before)
    if history.status == "interrupted":
        raise KeyboardInterrupt(history.message)
    return {"run": cell.file, "kind": cell.kind, "depth": cell.depth, "seed": cell.seed,
            "dataset": images.name, "device": history.device, "threads": threads or before,
            "resumed_at": saver[0].resumed_from if saver else 0,
            "history": rounded(history.to_dict())}


def rounded(value, digits: int = 6):
    """Floats to `digits` significant digits, all through lists and dicts (smaller JSON)."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# The output folder


@dataclass
class GridFolder:
    """The output folder of a grid (see the module's docstring)."""

    root: Path

    def path(self, kind: str, cell: GridRun) -> Path:
        suffix = ".pt" if kind == "checkpoints" else ".json"
        return self.root / kind / f"{cell.file}{suffix}"

    def finished(self, cell: GridRun) -> bool:
        return self.path("runs", cell).exists()

    def write(self, kind: str, cell: GridRun, content: dict) -> None:
        """Write a result or a failure (a temporary file, then renamed: never half a file)."""
        path = self.path(kind, cell)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(content))
        os.replace(temporary, path)

    def forget(self, kind: str, cell: GridRun) -> None:
        self.path(kind, cell).unlink(missing_ok=True)

    def log_call(self, call: dict) -> None:
        """Append one call's wall time (the report sums them) to calls.json."""
        path = self.root / "calls.json"
        calls = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps([*calls, call], indent=1))

    def claim(self, grid: Grid) -> None:
        """Record the grid in grid.json; refuse a folder that holds another grid, unless the
        new one only adds depths or seeds to it (`Grid.grows`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        saved = self.root / "grid.json"
        if saved.exists() and not grid.grows(Grid.from_dict(json.loads(saved.read_text()))):
            raise ValueError(f"{self.root} holds another grid ({saved}); give another --out, "
                             "the same arguments as the first call to resume it, or those "
                             "arguments with more depths or seeds to add runs")
        saved.write_text(json.dumps(grid.to_dict(), indent=1))


# ---------------------------------------------------------------------------------------------
# Progress: one bar for the grid, a line per run


@dataclass
class GridProgress(Callback):
    """One bar over all the grid's steps (runs done, runs running, time left), and a status
    line per run. In this process it is also the training callback of the run at hand; with
    Ray the tasks report their steps (`StepReporter`) and the driver passes them on."""

    total: int
    done: int
    steps: int
    quiet: bool = False
    running: set[str] = field(default_factory=set)
    at: dict[str, int] = field(default_factory=dict)       # steps counted, per run
    current: str = ""                                       # the run training in this process
    bar: tqdm | None = None

    def __post_init__(self) -> None:
        if not self.quiet:
            self.bar = tqdm(total=self.total * self.steps, initial=self.done * self.steps,
                            desc="grid", unit="step", dynamic_ncols=True)
            self.show()

    def show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"runs done {self.done}/{self.total}, "
                                     f"running {len(self.running)}")

    def say(self, line: str) -> None:
        if not self.quiet:
            tqdm.write(line)

    def started(self, cell: GridRun) -> None:
        self.current = cell.file
        self.running.add(cell.file)
        self.show()

    def advance(self, run: str, step: int) -> None:
        """Run `run` is at `step` (a resumed run jumps to its checkpoint's step)."""
        if run not in self.running:
            self.running.add(run)
            self.show()
        if self.bar is not None and step > self.at.get(run, 0):
            self.bar.update(step - self.at.get(run, 0))
        self.at[run] = max(step, self.at.get(run, 0))

    def on_start(self, run: Run) -> None:
        if run.step:
            self.say(f"{self.current}: resumed at step {run.step}")
        self.advance(self.current, run.step)

    def on_step(self, run: Run) -> None:
        self.advance(self.current, run.step)

    def ended(self, cell: GridRun, result: dict | None, error: str = "") -> None:
        """A run came back: its steps count as done (finished or failed) and a line says how."""
        self.advance(cell.file, self.steps)
        self.running.discard(cell.file)
        self.done += 1
        if result is None:
            self.say(f"{cell.file}: failed ({error.strip().splitlines()[-1]})")
        else:
            h = result["history"]
            test = f", test error {100 * h['test_error'][-1]:.2f}%" if h["test_error"] else ""
            self.say(f"{cell.file}: {h['status']}, {len(h['step'])} steps in "
                     f"{h['seconds']:.0f} s{test}")
        self.show()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_with_retries(work: Callable[[], dict], tries: int) -> tuple[dict | None, str]:
    """`work()` up to `tries` times: (its result, "") or (None, the last error's traceback).
    Ctrl-C is not an error: it goes through."""
    error = ""
    for _ in range(tries):
        try:
            return work(), ""
        except Exception:          # any error of one run is reported; the grid goes on
            error = traceback.format_exc()
    return None, error


def record_outcome(folder: GridFolder, progress: GridProgress, cell: GridRun,
                   result: dict | None, error: str) -> None:
    """Write what came back: the result (its checkpoint then goes), or the failure."""
    if result is None:
        folder.write("failed", cell, {"run": cell.file, "kind": cell.kind, "depth": cell.depth,
                                      "seed": cell.seed, "error": error})
    else:
        folder.write("runs", cell, result)
        folder.forget("failed", cell)
        folder.forget("checkpoints", cell)
    progress.ended(cell, result, error)
