"""Callbacks: code that runs at the training loop's moments (start, each step, each
evaluation, end) with the live `Run`: a progress bar and stopping at a training loss here;
live plots, checkpoints and Ray progress elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .checks import check_count, check_positive

if TYPE_CHECKING:
    from .train import Run


class Callback:
    """Override any of these; each gets the live `Run`."""

    def on_start(self, run: Run) -> None: ...
    def on_step(self, run: Run) -> None: ...
    def on_eval(self, run: Run) -> None: ...
    def on_end(self, run: Run) -> None: ...


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
