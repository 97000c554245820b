"""Training with live callbacks: one model (`fit`) or several side by side (`compare`).

`compare` steps every model on the *same* batch before moving on, so their curves grow together
and any difference between them comes from the models. Each run's record is a `History`: plain
lists of numbers that plots, the CLI's JSON and saved runs all share.

A Stop (any object with `is_set()`, e.g. `threading.Event`) or Ctrl-C ends training at a step
boundary and keeps everything; a loss that turns NaN/inf stops that model with a message.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_choice, check_count
from .data import Batches, Dataset
from .hooks import GradientNorms
from .models import build

# ---------------------------------------------------------------------------------------------
# The record of a run


@dataclass
class History:
    """Everything recorded for one model. Steps count optimizer updates, from 1.

    - `step`, `train_loss`, `train_error`, `lr`: every training step (error = 1 - accuracy)
    - `test_step`, `test_loss`, `test_error`: every evaluation
    - `layers`, `grad_step`, `grad_norms`: per-layer weight-gradient norms, one row per
      recorded step, layers in network order
    - `status`: "running", "finished", "stopped" (Stop pressed), "interrupted" (Ctrl-C),
      "diverged" (NaN/inf loss) or "early-stopped"; `message` says why in words
    """

    name: str
    config: dict = field(default_factory=dict)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    test_step: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    grad_step: list[int] = field(default_factory=list)
    grad_norms: list[list[float]] = field(default_factory=list)
    status: str = "running"
    message: str = ""
    seconds: float = 0.0
    device: str = ""

    def final_train_loss(self, last: int = 50) -> float:
        """Mean training loss of the last `last` steps (a less noisy "final" value)."""
        tail = self.train_loss[-last:]
        return sum(tail) / len(tail) if tail else math.nan

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------------------------------------
# Recipes: optimizer settings and learning-rate schedules


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and a learning-rate schedule over training progress p in [0, 1].

    schedule: "step" (÷10 at `milestones`), "onecycle" (linear warm-up for the first 15%, then
    cosine down to 0) or "constant". `warmup_steps` at lr/10 apply to models of depth >= 110
    (He et al. 2015 warmed ResNet-110 up at 0.01 for about 400 iterations).
    """

    name: str
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)
    warmup_steps: int = 0

    def lr_at(self, progress: float, step: int, depth: int = 0) -> float:
        if self.warmup_steps and depth >= 110 and step < self.warmup_steps:
            return self.lr / 10
        if self.schedule == "step":
            return self.lr * 0.1 ** sum(progress >= m for m in self.milestones)
        if self.schedule == "onecycle":
            if progress < 0.15:
                return self.lr * max(progress / 0.15, 0.04)
            return self.lr * 0.5 * (1 + math.cos(math.pi * (progress - 0.15) / 0.85))
        return self.lr


RECIPES = {
    # He et al. 2015 §4.2: lr 0.1, /10 at 32k and 48k of 64k iterations, wd 1e-4, momentum 0.9
    "he2015": Recipe("he2015", 0.1, 0.9, 1e-4, "step", (0.5, 0.75), warmup_steps=400),
    # short runs: one-cycle gets most out of a few hundred steps
    "quick": Recipe("quick", 0.1, 0.9, 5e-4, "onecycle"),
    # the degradation demo: a constant lr 0.1, the same for every model
    "constant": Recipe("constant", 0.1, 0.9, 5e-4, "constant"),
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        check_choice("recipe.schedule", recipe.schedule, ("step", "onecycle", "constant"))
        return recipe
    check_choice("recipe", recipe, tuple(RECIPES))
    return RECIPES[recipe]


# ---------------------------------------------------------------------------------------------
# Devices


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" gives CUDA, then Apple's MPS, then the CPU."""
    if str(device) != "auto":
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={device!r} is not allowed; use 'auto', 'cpu', 'cuda' "
                             "or 'mps'") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' is not allowed here: no CUDA GPU is available; "
                             "use 'auto' or 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Callbacks


class Callback:
    """Override any of these; each gets the live `Run`."""

    def on_start(self, run: Run) -> None: ...
    def on_step(self, run: Run) -> None: ...
    def on_eval(self, run: Run) -> None: ...
    def on_end(self, run: Run) -> None: ...


class ProgressBar(Callback):
    """A tqdm.auto progress bar (a widget in Jupyter, text in a terminal)."""

    def on_start(self, run: Run) -> None:
        from tqdm.auto import tqdm
        self.bar = tqdm(total=run.steps, desc="training", unit="step", leave=False)

    def on_step(self, run: Run) -> None:
        self.bar.update(run.step - self.bar.n)
        losses = {n: h.train_loss[-1] for n, h in run.histories.items() if h.train_loss}
        self.bar.set_postfix({n: f"{v:.3f}" for n, v in losses.items()}, refresh=False)

    def on_end(self, run: Run) -> None:
        self.bar.close()


class EarlyStop(Callback):
    """Stop a model when its test error has not improved for `patience` evaluations."""

    def __init__(self, patience: int = 3):
        self.patience = patience

    def on_eval(self, run: Run) -> None:
        for name in list(run.active):
            errors = run.histories[name].test_error
            if len(errors) > self.patience and min(errors[-self.patience:]) >= \
                    min(errors[:-self.patience]):
                run.finish(name, "early-stopped",
                           f"{name}: no better test error for {self.patience} evaluations")


@dataclass
class Run:
    """The state of a training run, handed to callbacks."""

    models: dict[str, nn.Module]
    histories: dict[str, History]
    norms: dict[str, GradientNorms]
    device: torch.device
    steps: int | None
    max_seconds: float | None
    step: int = 0
    last_eval: int = -1
    start: float = field(default_factory=time.perf_counter)
    active: list[str] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def progress(self) -> float:
        """Fraction of the budget (steps or seconds, whichever runs out first) used."""
        p = [self.step / self.steps] if self.steps else []
        if self.max_seconds:
            p.append(self.elapsed / self.max_seconds)
        return min(max(p), 1.0)

    @property
    def steps_per_second(self) -> float:
        return self.step / max(self.elapsed, 1e-9)

    def finish(self, name: str, status: str, message: str = "") -> None:
        """End training of one model (the others go on)."""
        if name in self.active:
            self.active.remove(name)
            self.histories[name].status, self.histories[name].message = status, message

    def sync_gradient_norms(self) -> None:
        """Copy the recorded gradient norms into the histories."""
        for name, norms in self.norms.items():
            h = self.histories[name]
            h.layers = norms.names
            h.grad_step = (norms.step_numbers() + 1).tolist()
            h.grad_norms = norms.values().tolist()


# ---------------------------------------------------------------------------------------------
# The loop


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000,
             device: torch.device | None = None) -> tuple[float, float]:
    """Mean cross-entropy loss and error rate (1 - accuracy) of `model` on (x, y)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss = errors = 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
        with _autocast(device):
            out = model(_layout(xb, device))
        loss += F.cross_entropy(out.float(), yb, reduction="sum").item()
        errors += (out.argmax(1) != yb).sum().item()
    model.train(was_training)
    return loss / len(x), errors / len(x)


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) \
        if device.type == "cuda" and x.dim() == 4 else x


def _depth(model: nn.Module) -> int:
    return int(getattr(model, "config", {}).get("depth", 0))


def compare(models: dict[str, nn.Module], data: Dataset, *, steps: int | None = None,
            epochs: float | None = None, max_seconds: float | None = None,
            batch_size: int = 128, recipe: str | Recipe = "quick",
            device: str | torch.device = "auto", seed: int = 0, augment: bool = False,
            eval_every: int | None = None, eval_samples: int | None = 2000,
            grad_every: int = 1, callbacks: Sequence[Callback] = (),
            stop: threading.Event | None = None, compile: bool = False
            ) -> dict[str, History]:
    """Train several models side by side on the same batches; return a History per model.

    Give a budget with `steps`, `epochs` and/or `max_seconds` (training ends at the first one
    reached; the learning-rate schedule follows whichever runs out first). `eval_every` steps
    (default: 10 times per run) the models are tested on `eval_samples` test images.
    """
    if not models:
        raise ValueError("models={} is not allowed; give at least one {name: model}")
    for arg, value in (("steps", steps), ("epochs", epochs), ("max_seconds", max_seconds)):
        if value is not None and (isinstance(value, bool) or not value > 0):
            raise ValueError(f"{arg}={value!r} is not allowed; use a positive number or None")
    if steps is None and epochs is None and max_seconds is None:
        raise ValueError("give a budget: steps=, epochs= or max_seconds=")
    if not isinstance(grad_every, int) or grad_every < 0:
        raise ValueError(f"grad_every={grad_every!r} is not allowed; use 0 (off) or a whole "
                         "number >= 1")
    check_count("eval_every", eval_every, allow_none=True)
    check_count("eval_samples", eval_samples, allow_none=True)
    recipe = get_recipe(recipe)
    device = pick_device(device)
    batches = Batches(data, batch_size, device=device, augment=augment, seed=seed)
    if epochs is not None:
        from_epochs = max(1, round(epochs * len(data.x_train) / batch_size))
        steps = from_epochs if steps is None else min(steps, from_epochs)
    eval_every = eval_every if eval_every is not None else max(1, (steps or 500) // 10)
    n_eval = len(data.x_test) if eval_samples is None else min(eval_samples, len(data.x_test))
    x_test, y_test = data.x_test[:n_eval].to(device), data.y_test[:n_eval].to(device)

    torch.manual_seed(seed)
    optimizers, forwards = {}, {}
    for name, model in models.items():
        model.to(device).train()
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        optimizers[name] = torch.optim.SGD(model.parameters(), lr=recipe.lr,
                                           momentum=recipe.momentum,
                                           weight_decay=recipe.weight_decay)
        forwards[name] = torch.compile(model) if compile else model
    histories = {name: History(name, {**getattr(m, "config", {}), "recipe": recipe.name,
                                      "batch_size": batch_size, "seed": seed},
                               device=str(device)) for name, m in models.items()}
    norms = {name: GradientNorms(m, every=grad_every) for name, m in models.items()} \
        if grad_every else {}
    run = Run(models, histories, norms, device, steps, max_seconds, active=list(models))
    for cb in callbacks:
        cb.on_start(run)
    try:
        while run.active and not (stop is not None and stop.is_set()):
            if (steps and run.step >= steps) or (max_seconds and run.elapsed >= max_seconds):
                break
            x, y = next(batches)
            x = _layout(x, device)
            progress = run.progress
            stats = []
            for name in run.active:
                lr = recipe.lr_at(progress, run.step, _depth(models[name]))
                histories[name].lr.append(lr)
                for group in optimizers[name].param_groups:
                    group["lr"] = lr
                with _autocast(device):
                    out = forwards[name](x)
                loss = F.cross_entropy(out.float(), y)
                optimizers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[name].step()
                stats.append(torch.stack([loss.detach(), (out.argmax(1) != y).float().mean()]))
            values = torch.stack(stats).tolist()          # one sync for all models
            run.step += 1
            for name, (loss_value, error) in zip(list(run.active), values, strict=True):
                h = histories[name]
                if not math.isfinite(loss_value):
                    lr = h.lr.pop()                       # a step that is not kept
                    norm = getattr(models[name], "config", {}).get("norm", True)
                    run.finish(name, "diverged", (
                        f"{name} diverged at step {run.step}: the loss became {loss_value}. "
                        f"Try a smaller learning rate (it was {lr:g})"
                        + ("" if norm else " or switch normalization (BatchNorm) on") + "."))
                    warnings.warn(h.message, stacklevel=2)
                    continue
                h.step.append(run.step)
                h.train_loss.append(loss_value)
                h.train_error.append(error)
            for cb in callbacks:
                cb.on_step(run)
            if run.step % eval_every == 0:
                _evaluate_all(run, x_test, y_test, callbacks)
        if stop is not None and stop.is_set():
            status, message = "stopped", f"Stop pressed: training ended at step {run.step}"
        else:
            status, message = "finished", ""
            if run.last_eval != run.step:
                _evaluate_all(run, x_test, y_test, callbacks)
        for name in list(run.active):
            run.finish(name, status, message)
    except KeyboardInterrupt:
        for name in list(run.active):
            run.finish(name, "interrupted", f"interrupted at step {run.step}")
    finally:
        run.sync_gradient_norms()
        for n in norms.values():
            n.remove()
        for h in histories.values():
            h.seconds = run.elapsed
        for cb in callbacks:
            cb.on_end(run)
    return histories


def _evaluate_all(run: Run, x_test: torch.Tensor, y_test: torch.Tensor,
                  callbacks: Iterable[Callback]) -> None:
    for name in run.active:
        loss, error = evaluate(run.models[name], x_test, y_test, device=run.device)
        h = run.histories[name]
        h.test_step.append(run.step)
        h.test_loss.append(loss)
        h.test_error.append(error)
    run.last_eval = run.step
    for cb in callbacks:
        cb.on_eval(run)


def fit(model: nn.Module, data: Dataset, *, name: str = "model", **kwargs) -> History:
    """Train one model; the arguments are those of `compare`."""
    return compare({name: model}, data, **kwargs)[name]


# ---------------------------------------------------------------------------------------------
# Saving and loading runs


def save_run(path: str | Path, models: dict[str, nn.Module], histories: dict[str, History]
             ) -> Path:
    """Save weights, how to rebuild each model, and the histories in one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "resnet-lab run 1",
                "models": {n: {"config": getattr(m, "config", None),
                               "state_dict": {k: v.cpu() for k, v in m.state_dict().items()}}
                           for n, m in models.items()},
                "histories": {n: h.to_dict() for n, h in histories.items()}}, path)
    return path


def load_run(path: str | Path, device: str | torch.device = "cpu"
             ) -> tuple[dict[str, nn.Module], dict[str, History]]:
    """Load a run saved with `save_run`: rebuilt models (with their weights) and histories."""
    saved = torch.load(path, map_location=device, weights_only=True)
    if saved.get("format") != "resnet-lab run 1":
        raise ValueError(f"{path} is not a resnet-lab run file")
    models = {}
    for name, entry in saved["models"].items():
        if entry["config"] is None:
            raise ValueError(f"model {name!r} in {path} was not built by resnet_lab; "
                             "load its state_dict by hand")
        model = build(entry["config"])
        model.load_state_dict(entry["state_dict"])
        models[name] = model.to(device)
    histories = {n: History.from_dict(d) for n, d in saved["histories"].items()}
    return models, histories


def with_lr(recipe: str | Recipe, lr: float) -> Recipe:
    """A recipe with another peak learning rate."""
    if not lr > 0:
        raise ValueError(f"lr={lr!r} is not allowed; use a positive number")
    return replace(get_recipe(recipe), lr=lr)
