"""Callbacks: code that runs at the training loop's moments with the live `Run`, as in fastai's
miniai. The loop's own rules are callbacks too, on by default in `compare`: the learning-rate
schedule (`LrSchedule`), He et al.'s warm-up (`WarmUp`) and the divergence guard
(`DivergenceGuard`). Here also a progress bar and stopping at a training loss; live plots,
checkpoints and the grid's progress live beside what they serve."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..nets.checks import check_count, check_positive
from ..nets.configs import ResNetOptions
from ..nets.models import config_of

if TYPE_CHECKING:
    from .run import Run


class Callback:
    """Override any of these; each gets the live `Run`, and may change it. `on_start` may
    replace a model's step (`run.steppers[name]`: anything called as a `Step` is); `before_step`
    may set a model's learning rate for the coming step (`run.lr[name]`); `on_step` comes after
    every model stepped; `reject_row` may refuse a row as it is recorded (the model then ends,
    "diverged", with the reason returned)."""

    def on_start(self, run: Run) -> None: ...
    def before_step(self, run: Run) -> None: ...
    def on_step(self, run: Run) -> None: ...
    def on_eval(self, run: Run) -> None: ...
    def on_end(self, run: Run) -> None: ...

    def reject_row(self, run: Run, name: str, step: int, row: list[float]) -> str:
        return ""


class LrSchedule(Callback):
    """Every model's learning rate from the recipe's schedule at the run's progress."""

    def before_step(self, run: Run) -> None:
        lr = run.recipe.lr_at(run.progress)
        for name in run.active:
            run.lr[name] = lr


class WarmUp(Callback):
    """He et al.'s warm-up (§4.2, ResNet-110): a model in `run.warming_up` trains at lr/10 until
    its last training error is under the recipe's `warmup_error`, or for exactly the recipe's
    `warmup_steps` where it sets them. Its rows are read every step while it warms up, so where
    warm-up ends does not depend on timing. After `LrSchedule`."""

    def before_step(self, run: Run) -> None:
        for name in [n for n in run.active if n in run.warming_up]:
            if self.warm(run, name):
                run.lr[name] = run.recipe.lr_at(run.progress, warming_up=True)
            else:
                run.warming_up.discard(name)

    @staticmethod
    def warm(run: Run, name: str) -> bool:
        """Whether model `name` takes its next step at the warm-up rate."""
        if run.recipe.warmup_steps:
            return run.step < run.recipe.warmup_steps
        run.flush()
        errors = run.histories[name].train_error
        return not (errors and errors[-1] < run.recipe.warmup_error)


class DivergenceGuard(Callback):
    """A model whose loss turns NaN/inf, or grows to over `factor` times its first value
    (finite, but diverged), stops there with a message saying what to try."""

    def __init__(self, factor: float = 1e3):
        check_positive("factor", factor)
        self.factor = factor

    def reject_row(self, run: Run, name: str, step: int, row: list[float]) -> str:
        h, loss = run.histories[name], row[0]
        if not math.isfinite(loss):
            why = f"the loss became {loss}"
        elif h.train_loss and loss > self.factor * h.train_loss[0]:
            why = (f"the loss grew to {loss:.3g}, over {self.factor:g}x its first value "
                   f"{h.train_loss[0]:.3g}")
        else:
            return ""
        config = config_of(run.models[name])
        norm_off = isinstance(config, ResNetOptions) and not config.norm
        return (f"{name} diverged at step {step}: {why}. Try a smaller learning rate (it was "
                f"{h.lr[len(h.step)]:g})"
                + (" or switch normalization (BatchNorm) on" if norm_off else "") + ".")


class ProgressBar(Callback):
    """A tqdm.auto progress bar (a widget in Jupyter, text in a terminal) with each model's
    latest training loss (as of the last flush: the bar reads nothing off the device itself)."""

    def on_start(self, run: Run) -> None:
        from tqdm.auto import tqdm
        self.bar = tqdm(total=run.max_steps, desc="training", unit="step", leave=False)

    def on_step(self, run: Run) -> None:
        self.bar.update(run.step - self.bar.n)
        self.show_losses(run)

    def show_losses(self, run: Run) -> None:
        losses = {n: h.train_loss[-1] for n, h in run.histories.items() if h.train_loss}
        self.bar.set_postfix({n: f"{v:.3f}" for n, v in losses.items()}, refresh=False)

    def on_end(self, run: Run) -> None:
        self.show_losses(run)                     # every row is in the histories by now
        self.bar.close()


class StopAtLoss(Callback):
    """Stop a model when the mean of its last `window` training losses reaches `target`:
    to compare nets at matched training loss rather than after equal steps."""

    def __init__(self, target: float, window: int = 10):
        check_positive("target", target)
        check_count("window", window)
        self.target, self.window = target, window

    def on_step(self, run: Run) -> None:
        run.flush()                                   # the losses are read every step
        for name in list(run.active):
            losses = run.histories[name].train_loss[-self.window:]
            if len(losses) == self.window and sum(losses) / self.window <= self.target:
                run.finish(name, "early-stopped", f"{name}: training loss reached "
                           f"{self.target:.3f} at step {run.step}")
