"""A training run while it trains: the `Run` that the loop advances and callbacks read.

Each step's numbers stay on the device in `pending` until `Run.flush()` copies them, for every
model at once, into the models' `History`s; a row that a callback rejects (a diverged loss:
callbacks.DivergenceGuard) ends that model's training there.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .data import Batches
from .history import History
from .recipes import Recipe
from .step import Step

FLUSH_STEPS, FLUSH_SECONDS = 50, 0.25   # rows wait on the device at most this many steps / s


@dataclass
class Run:
    """The state of a training run, handed to callbacks, which may change it: a model's
    learning rate for the next step (`lr`, set before each step), a model's step (`steppers`,
    replaced at the start), which models still train (`finish`). Each step's numbers stay on
    the device in `pending` until `flush()` copies them into the histories (callbacks that
    read the histories every step call it first; the loop does when `flush_due`, before each
    evaluation and at the end)."""

    models: dict[str, nn.Module]
    steppers: dict[str, Step]          # each model's Step: what trains it, one step a call
    histories: dict[str, History]
    recipe: Recipe
    device: torch.device
    max_steps: int | None
    max_seconds: float | None
    grad_every: int = 1       # record the norms every this many steps (0: never)
    step: int = 0
    last_eval: int = -1
    start: float = field(default_factory=time.perf_counter)
    active: list[str] = field(default_factory=list)
    pending: dict[str, list[tuple[int, torch.Tensor]]] = field(default_factory=dict)
    last_flush: float = field(default_factory=time.perf_counter)
    flushes: int = 0
    batches: Batches | None = None        # the batch stream (a checkpoint keeps its place)
    warming_up: set[str] = field(default_factory=set)   # models still at the warm-up lr
    lr: dict[str, float] = field(default_factory=dict)  # each model's lr for its next step
    callbacks: list = field(default_factory=list)       # the run's Callbacks, in order
    bn_from: torch.Tensor | None = None   # training images precise BatchNorm samples from
    checkpoint: Path | None = None        # the file a Checkpoint callback saves the run to

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def progress(self) -> float:
        """Fraction of the budget (steps or seconds, whichever runs out first) used."""
        p = [self.step / self.max_steps] if self.max_steps else []
        if self.max_seconds:
            p.append(self.elapsed / self.max_seconds)
        return min(max(p), 1.0)

    @property
    def budget_spent(self) -> bool:
        return bool((self.max_steps and self.step >= self.max_steps)
                    or (self.max_seconds and self.elapsed >= self.max_seconds))

    @property
    def steps_per_second(self) -> float:
        return self.step / max(self.elapsed, 1e-9)

    @property
    def flush_due(self) -> bool:
        """Whether rows have waited long enough on the device: FLUSH_STEPS steps or
        FLUSH_SECONDS."""
        return max(map(len, self.pending.values())) >= FLUSH_STEPS \
            or time.perf_counter() - self.last_flush >= FLUSH_SECONDS

    def finish(self, name: str, status: str, message: str = "") -> None:
        """End training of one model (the others go on)."""
        if name in self.active:
            self.active.remove(name)
            self.histories[name].status, self.histories[name].message = status, message

    def flush(self) -> None:
        """Copy every pending row to the host (one copy for all models) and append it to the
        histories, in order. A model whose loss diverged stops at its first bad row; its later
        rows are dropped."""
        names = [n for n, rows in self.pending.items() if rows]
        for name in names:               # a graph's fault surfaces here: its rows are void
            self.drop(name, self.steppers[name].settle())
        names = [n for n in names if self.pending[n]]
        self.last_flush = time.perf_counter()
        if not names:
            return
        flat = torch.cat([torch.stack([r for _, r in self.pending[n]]).flatten()
                          for n in names]).tolist()                  # the one host copy
        self.flushes += 1
        at = 0
        for name in names:
            rows, width = self.pending[name], self.steppers[name].width
            self.pending[name] = []
            for step, row in ((s, flat[at + i * width:at + (i + 1) * width])
                              for i, (s, _) in enumerate(rows)):
                if not self.record(name, step, row):
                    break
            at += len(rows) * width

    def drop(self, name: str, void: int) -> None:
        """Forget the first `void` pending rows of a model (and their lr)."""
        h, start = self.histories[name], len(self.histories[name].step)
        del self.pending[name][:void], h.lr[start:start + void]

    def record(self, name: str, run_step: int, row: list[float]) -> bool:
        """Append the row made at the run's `run_step` to the model's history as its next step
        (the model's own count of updates: after void rows, one less each, no gap); False, and
        the model finished as "diverged", when a callback rejects the row (`reject_row`)."""
        h = self.histories[name]
        step = len(h.step) + 1
        why = next(filter(None, (cb.reject_row(self, name, step, row) for cb in self.callbacks)),
                   "")
        if why:
            del h.lr[len(h.step):]                         # steps that are not kept
            self.finish(name, "diverged", why)
            warnings.warn(why, stacklevel=4)
            return False
        h.step.append(step)
        h.train_loss.append(row[0])
        h.train_error.append(row[1])
        if row[2:] and self.grad_every and (run_step - 1) % self.grad_every == 0:  # norms made
            h.grad_step.append(step)
            h.grad_norms.append(row[2:])
        return True
