"""Training with live callbacks: one model (`fit`) or several side by side (`compare`).

`compare` steps every model on the *same* batch before moving on, so their curves grow together
and any difference between them comes from the models. Each model's record is a `History`
(history.py); how it trains is a `Recipe` (recipes.py); callbacks.py has the hooks into the loop.

A Stop (any object with `is_set()`, e.g. `threading.Event`) or Ctrl-C ends training at a step
boundary and keeps everything; a loss that turns NaN/inf stops that model with a message.

A *run* is one call of `compare`: while it trains, its state is a `Run` (what callbacks see);
what it leaves is a History per model; `history.save_run` writes models and histories to one
file. A model's *config* is only ever its dataclass (configs.py); how it was trained is its
History's `setup`.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .callbacks import Callback
from .captured import CapturedStep, ContextLostError, graph_backend
from .checks import check_choice, check_count, check_positive
from .configs import ResNetOptions
from .data import Batches, Dataset
from .devices import pick_device
from .evaluation import bn_images, describe_bn, evaluate, has_batchnorm
from .history import History, setup_of
from .hooks import capture_problem
from .models import config_of
from .recipes import Recipe, get_recipe, warms_up
from .step import GRAPH_MODES, Step, fused_sgd_problem, layout

FLUSH_STEPS, FLUSH_SECONDS = 50, 0.25   # rows wait on the device at most this many steps / s


@dataclass
class Run:
    """The state of a training run, handed to callbacks. Each step's numbers stay on the
    device in `pending` until `flush()` copies them into the histories (callbacks that read
    the histories every step call it first; the loop does at most every FLUSH_STEPS steps or
    FLUSH_SECONDS, before each evaluation and at the end)."""

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

    def lr_of(self, name: str) -> float:
        """The model's learning rate for the next step. A model warming up trains at lr/10
        until the last step's training error is under the recipe's `warmup_error` (its rows
        are read every step while it warms up, so where warm-up ends does not depend on
        timing)."""
        if name in self.warming_up:
            self.flush()
            errors = self.histories[name].train_error
            if errors and errors[-1] < self.recipe.warmup_error:
                self.warming_up.discard(name)
        return self.recipe.lr_at(self.progress, name in self.warming_up)

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
        (the model's own count of updates: after void rows, one less each, no gap); False (and
        the model finished) when its loss diverged there."""
        h = self.histories[name]
        step = len(h.step) + 1
        why = divergence(h, row[0])
        if why:
            lr = h.lr[len(h.step)]
            del h.lr[len(h.step):]                         # steps that are not kept
            config = config_of(self.models[name])
            norm_off = isinstance(config, ResNetOptions) and not config.norm
            self.finish(name, "diverged", (
                f"{name} diverged at step {step}: {why}. Try a smaller learning rate "
                f"(it was {lr:g})"
                + (" or switch normalization (BatchNorm) on" if norm_off else "") + "."))
            warnings.warn(h.message, stacklevel=4)
            return False
        h.step.append(step)
        h.train_loss.append(row[0])
        h.train_error.append(row[1])
        if row[2:] and self.grad_every and (run_step - 1) % self.grad_every == 0:  # norms made
            h.grad_step.append(step)
            h.grad_norms.append(row[2:])
        return True


# ---------------------------------------------------------------------------------------------
# The loop, in named steps: checks, setup, one step, recording


def check_budget(steps: int | None, epochs: float | None, max_seconds: float | None) -> None:
    """At least one budget, each a positive number."""
    for arg, value in (("steps", steps), ("epochs", epochs), ("max_seconds", max_seconds)):
        check_positive(arg, value, allow_none=True)
    if steps is None and epochs is None and max_seconds is None:
        raise ValueError("give a budget: steps=, epochs= or max_seconds=")


def check_arguments(models: dict, steps: int | None, epochs: float | None,
                    max_seconds: float | None, grad_every: int, eval_every: int | None,
                    eval_samples: int | None, graphs: str = "auto") -> None:
    """`compare`'s checks, all made before any tensor work starts."""
    check_choice("graphs", graphs, GRAPH_MODES)
    if not models:
        raise ValueError("models={} is not allowed; give at least one {name: model}")
    check_budget(steps, epochs, max_seconds)
    if isinstance(grad_every, bool) or not isinstance(grad_every, int) or grad_every < 0:
        raise ValueError(f"grad_every={grad_every!r} is not allowed; use 0 (off) or a whole "
                         "number >= 1")
    check_count("eval_every", eval_every, allow_none=True)
    check_count("eval_samples", eval_samples, allow_none=True)


def step_budget(steps: int | None, epochs: float | None, n_train: int, batch_size: int
                ) -> int | None:
    """The number of steps to run: `steps`, or `epochs` of the training set if fewer."""
    if epochs is None:
        return steps
    from_epochs = max(1, round(epochs * n_train / batch_size))
    return from_epochs if steps is None else min(steps, from_epochs)


def make_step(name: str, model: nn.Module, recipe: Recipe, device: torch.device,
              graphs: str, norms: bool) -> Step:
    """The model's step: a captured CUDA graph on CUDA (unless graphs="off", fused SGD is
    missing there, or hooks or instruments are on the model: the engine says which), else
    the eager step with SGD."""
    backend = graph_backend(device) if graphs != "off" else None
    problem = backend and (fused_sgd_problem(device) or capture_problem(model))
    if backend and not problem:
        return CapturedStep(model, lr=recipe.lr, momentum=recipe.momentum, norms=norms,
                            weight_decay=recipe.weight_decay, graphs=graphs, backend=backend,
                            name=name)
    if graphs == "require" and (problem or not backend):
        raise RuntimeError(f"{name}: CUDA graph required, but "
                           f"{problem or f'the device is {device.type!r}, not CUDA'}")
    step = Step(model, recipe.sgd(model.parameters()), name=name, norms=norms)
    step.engine = f"eager (CUDA graph off: {problem})" if problem else "eager"
    return step


def start_run(models: dict[str, nn.Module], recipe: Recipe, device: torch.device,
              grad_every: int, batch_size: int, seed: int, max_steps: int | None,
              max_seconds: float | None, graphs: str = "auto") -> Run:
    """Move the models to `device` in training mode, and give each a Step and a History."""
    for model in models.values():
        model.to(device).train()
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
    steppers = {name: make_step(name, m, recipe, device, graphs, norms=grad_every > 0)
                for name, m in models.items()}
    histories = {name: History(name, setup_of(m, recipe, batch_size, seed), device=str(device),
                               layers=steppers[name].layers)
                 for name, m in models.items()}
    return Run(models, steppers, histories, recipe, device, max_steps, max_seconds,
               grad_every=grad_every, active=list(models),
               pending={name: [] for name in models},
               warming_up={name for name, m in models.items() if warms_up(m, recipe)})


def train_all(run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step of every model still training, on the same batch; their rows wait on the
    device until the next flush (due every FLUSH_STEPS steps or FLUSH_SECONDS)."""
    x, norms = layout(x, run.device), bool(run.grad_every) and run.step % run.grad_every == 0
    for name in run.active:
        lr = run.lr_of(name)
        run.histories[name].lr.append(lr)
        run.pending[name].append((run.step + 1, run.steppers[name](x, y, lr, norms=norms)))
    run.step += 1
    if max(map(len, run.pending.values())) >= FLUSH_STEPS \
            or time.perf_counter() - run.last_flush >= FLUSH_SECONDS:
        run.flush()


DIVERGED_FACTOR = 1e3   # a loss this many times its first value has diverged, though finite


def divergence(h: History, loss: float) -> str:
    """Why a loss means the run diverged ("" when it has not): NaN/inf, or a loss that grew
    to over DIVERGED_FACTOR times its first value."""
    if not math.isfinite(loss):
        return f"the loss became {loss}"
    if h.train_loss and loss > DIVERGED_FACTOR * h.train_loss[0]:
        return (f"the loss grew to {loss:.3g}, over {DIVERGED_FACTOR:g}x its first value "
                f"{h.train_loss[0]:.3g}")
    return ""


def compare(models: dict[str, nn.Module], data: Dataset, *, steps: int | None = None,
            epochs: float | None = None, max_seconds: float | None = None,
            batch_size: int = 128, recipe: str | Recipe = "quick",
            device: str | torch.device = "auto", seed: int = 0, augment: bool = False,
            eval_every: int | None = None, eval_samples: int | None = 2000,
            grad_every: int = 1, callbacks: Sequence[Callback] = (),
            stop: threading.Event | None = None, graphs: str = "auto") -> dict[str, History]:
    """Train several models side by side on the same batches; return a History per model.
    Budget: `steps`, `epochs` and/or `max_seconds`, the first reached ends training (the lr
    schedule follows it). Tests every `eval_every` steps (default: 10 a run) on `eval_samples`
    images; keeps the per-layer gradient norms every `grad_every` steps (0: never). `seed` fixes
    the batches (the global random state is untouched). The models move to `device` ("auto":
    CUDA, MPS, CPU) and stay there; on CUDA each step is a captured graph (graphs="off"/"require").
    """
    check_arguments(models, steps, epochs, max_seconds, grad_every, eval_every, eval_samples,
                    graphs)
    recipe, device = get_recipe(recipe), pick_device(device)
    batches = Batches(data, batch_size, device=device, augment=augment, seed=seed)
    max_steps = step_budget(steps, epochs, len(data.x_train), batch_size)
    eval_every = eval_every or max(1, (max_steps or 500) // 10)
    test = data.x_test[:eval_samples].to(device), data.y_test[:eval_samples].to(device)
    run = start_run(models, recipe, device, grad_every, batch_size, seed, max_steps,
                    max_seconds, graphs)
    run.batches, run.bn_from = batches, batches.x
    for name, h in run.histories.items():
        h.setup.update(data=data.name, eval_bn=describe_bn(models[name], len(bn_images(batches.x))))
    train_loop(run, test, eval_every, callbacks, stop)
    return run.histories


def train_loop(run: Run, test: tuple[torch.Tensor, torch.Tensor], eval_every: int,
               callbacks: Sequence[Callback], stop: threading.Event | None) -> None:
    """Step every model still training on the next batch, test every `eval_every` steps,
    until the budget is spent, Stop is pressed or no model trains; Ctrl-C ends it at a step
    boundary. Whatever ends it, the histories are complete afterwards."""
    for cb in callbacks:
        cb.on_start(run)
    try:
        while run.active and not (stop is not None and stop.is_set()) and not run.budget_spent:
            train_all(run, *next(run.batches))
            for cb in callbacks:
                cb.on_step(run)
            if run.step % eval_every == 0:
                evaluate_all(run, *test, callbacks)
        finish_all(run, stop, test, callbacks)
    except ContextLostError as err:           # the GPU is gone: its rows with it
        run.pending = {name: [] for name in run.pending}
        raise err.resume_from(run.checkpoint) from err.__cause__
    except KeyboardInterrupt:
        run.flush()
        for name in list(run.active):
            run.finish(name, "interrupted", f"interrupted at step {run.step}")
    finally:
        close_run(run, callbacks)


def close_run(run: Run, callbacks: Iterable[Callback]) -> None:
    """Whatever ended the run (finished, Stop, Ctrl-C, an error): every row into the histories,
    each one's time, engine and the steps it trained; then the callbacks' on_end."""
    run.flush()
    for name, h in run.histories.items():
        h.seconds = run.elapsed
        h.setup.update(engine=run.steppers[name].engine, steps=len(h.step))
    for cb in callbacks:
        cb.on_end(run)


def finish_all(run: Run, stop: threading.Event | None,
               test: tuple[torch.Tensor, torch.Tensor], callbacks: Iterable[Callback]) -> None:
    """The loop is over: the models still training end "stopped" when Stop was pressed; else
    after a last evaluation (unless this step had one) they end "finished"."""
    run.flush()
    if stop is not None and stop.is_set():
        status, message = "stopped", f"Stop pressed: training ended at step {run.step}"
    else:
        status, message = "finished", ""
        if run.last_eval != run.step:
            evaluate_all(run, *test, callbacks)
    for name in list(run.active):
        run.finish(name, status, message)


def evaluate_all(run: Run, x_test: torch.Tensor, y_test: torch.Tensor,
                 callbacks: Iterable[Callback]) -> None:
    """Test every model still training (their pending rows flushed first: a diverged model is
    not tested), its BatchNorm statistics re-estimated first (precise BatchNorm), and append
    the result to its History. At the last evaluation of a budget, the test error with the
    running averages as training left them is kept too, to show how far they lagged."""
    run.flush()
    for name in run.active:
        model, h = run.models[name], run.histories[name]
        if run.budget_spent and has_batchnorm(model):
            h.running_bn_test_error = evaluate(model, x_test, y_test)[1]
        loss, error = evaluate(model, x_test, y_test, bn_from=run.bn_from)
        h.test_step.append(len(h.step))          # its updates so far (run.step, but voids)
        h.test_loss.append(loss)
        h.test_error.append(error)
    run.last_eval = run.step
    for cb in callbacks:
        cb.on_eval(run)


def fit(model: nn.Module, data: Dataset, *, name: str = "model", steps: int | None = None,
        epochs: float | None = None, max_seconds: float | None = None, batch_size: int = 128,
        recipe: str | Recipe = "quick", device: str | torch.device = "auto", seed: int = 0,
        augment: bool = False, eval_every: int | None = None, eval_samples: int | None = 2000,
        grad_every: int = 1, callbacks: Sequence[Callback] = (),
        stop: threading.Event | None = None, graphs: str = "auto") -> History:
    """Train one model, named `name` in its History; every other argument is `compare`'s."""
    return compare({name: model}, data, steps=steps, epochs=epochs, max_seconds=max_seconds,
                   batch_size=batch_size, recipe=recipe, device=device, seed=seed,
                   augment=augment, eval_every=eval_every, eval_samples=eval_samples,
                   grad_every=grad_every, callbacks=callbacks, stop=stop, graphs=graphs)[name]

