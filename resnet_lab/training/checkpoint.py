"""Checkpoints: a training run saved part-way, and picked up again where it was.

`Checkpoint(path)` is a callback for `train.compare`. When it starts and `path` exists, it
restores the run from it: every model's weights and BatchNorm statistics, the optimizer's
momentum, the histories so far, the step count, which models still train or warm up, and the
batch stream's place (order, position, random generator). The resumed run then goes on as the
uninterrupted one would have, step for step (on the same device and thread count). While
training it saves the run every `every_seconds` (or `every_steps`), at a step boundary, so a
killed process loses at most that much. A save writes a temporary file and then renames it:
a kill during a save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from ..nets.checks import check_positive
from .callbacks import Callback
from .history import History
from .run import Run

FORMAT = "resnet-lab checkpoint 1"


class Checkpoint(Callback):
    """Save the run every `every_seconds` (default 5 minutes) or `every_steps`, whichever comes
    first; resume from `path` when it exists."""

    def __init__(self, path: str | Path, every_seconds: float = 300.0,
                 every_steps: int | None = None):
        check_positive("every_seconds", every_seconds)
        check_positive("every_steps", every_steps, allow_none=True)
        self.path, self.every_seconds, self.every_steps = Path(path), every_seconds, every_steps
        self.saved_at = time.perf_counter()
        self.resumed_from = 0          # the step the run resumed at (0: it started fresh)

    def on_start(self, run: Run) -> None:
        run.checkpoint = self.path            # named if the run's GPU fails for good
        if self.path.exists():
            restore(run, torch.load(self.path, map_location=run.device, weights_only=True),
                    self.path)
            self.resumed_from = run.step
        self.saved_at = time.perf_counter()

    def on_step(self, run: Run) -> None:
        due_steps = self.every_steps and run.step % self.every_steps == 0
        if due_steps or time.perf_counter() - self.saved_at >= self.every_seconds:
            self.save(run)

    def save(self, run: Run) -> None:
        """Write the run's state now (its pending rows flushed into the histories first)."""
        run.flush()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        torch.save(state_of(run), temporary)
        os.replace(temporary, self.path)
        self.saved_at = time.perf_counter()


def state_of(run: Run) -> dict:
    """Everything a run needs to go on from its current step, as tensors and plain values."""
    batches = run.batches
    return {
        "format": FORMAT, "step": run.step, "last_eval": run.last_eval,
        "elapsed": run.elapsed, "active": list(run.active), "warming_up": sorted(run.warming_up),
        "models": {n: m.state_dict() for n, m in run.models.items()},
        "optimizers": {n: s.optimizer.state_dict() for n, s in run.steppers.items()},
        "histories": {n: h.to_dict() for n, h in run.histories.items()},
        "batches": None if batches is None else {
            "generator": batches.generator.get_state(), "order": batches.order.cpu(),
            "position": batches.position, "seen": batches.seen},
    }


def restore(run: Run, state: dict, source: Path) -> None:
    """Put a saved state back into a freshly started run of the same models."""
    if state.get("format") != FORMAT or set(state["models"]) != set(run.models):
        raise ValueError(f"{source} is not a checkpoint of this run (it holds "
                         f"{sorted(state.get('models', {}))}, the run trains {sorted(run.models)})")
    for name, model in run.models.items():
        model.load_state_dict(state["models"][name])
        run.steppers[name].load_optimizer_state(state["optimizers"][name])   # the step owns lr
        run.histories[name] = History.from_dict(state["histories"][name])
    run.step, run.last_eval = state["step"], state["last_eval"]
    run.active, run.warming_up = list(state["active"]), set(state["warming_up"])
    run.start = time.perf_counter() - state["elapsed"]
    if run.batches is not None and state["batches"] is not None:
        saved = state["batches"]
        run.batches.generator.set_state(saved["generator"].cpu())
        run.batches.order = saved["order"].to(run.batches.device)
        run.batches.position, run.batches.seen = saved["position"], saved["seen"]
