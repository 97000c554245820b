"""Training with live callbacks: several models side by side (`compare`) or one (`fit`).

`compare` steps every model on the *same* batch before moving on, so their curves grow together
and any difference between them comes from the models. `train_loop` below is the whole loop on
one screen; the rules it follows are callbacks (callbacks.py): the lr schedule, He et al.'s
warm-up and the divergence guard by default, a progress bar, live plots or checkpoints when
asked for. Each model's record is a `History` (history.py); how it trains is a `Recipe`
(recipes.py); a run's state while it trains is a `Run` (run.py).

A Stop (any object with `is_set()`, e.g. `threading.Event`) or Ctrl-C ends training at a step
boundary and keeps everything; a loss that turns NaN/inf stops that model with a message.
A model's *config* is only ever its dataclass (nets/configs.py); how it was trained is its
History's `setup`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import nn

from ..instruments.hooks import capture_problem
from ..nets.checks import check_choice, check_count, check_positive
from ..nets.devices import pick_device
from .callbacks import Callback, DivergenceGuard, LrSchedule, WarmUp
from .captured import CapturedStep, ContextLostError, graph_backend
from .data import Batches, Dataset
from .evaluation import bn_images, describe_bn, evaluate, has_batchnorm
from .history import History, setup_of
from .recipes import Recipe, get_recipe, warms_up
from .run import Run
from .step import GRAPH_MODES, Step, fused_sgd_problem, layout

Tensors = tuple[torch.Tensor, torch.Tensor]


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
    `callbacks` run after the default ones: LrSchedule, WarmUp, DivergenceGuard.
    """
    check_arguments(models, steps, epochs, max_seconds, grad_every, eval_every, eval_samples,
                    graphs)
    recipe, device = get_recipe(recipe), pick_device(device)
    batches = Batches(data, batch_size, device=device, augment=augment, seed=seed)
    max_steps = step_budget(steps, epochs, len(data.x_train), batch_size)
    run = start_run(models, recipe, batches, max_steps, max_seconds, grad_every, graphs)
    run.callbacks = [LrSchedule(), WarmUp(), DivergenceGuard(), *callbacks]
    for name, h in run.histories.items():
        h.setup.update(data=data.name, eval_bn=describe_bn(models[name], len(bn_images(batches.x))))
    test = data.x_test[:eval_samples].to(device), data.y_test[:eval_samples].to(device)
    train_loop(run, test, eval_every or max(1, (max_steps or 500) // 10), stop)
    return run.histories


def train_loop(run: Run, test: Tensors, eval_every: int, stop: threading.Event | None) -> None:
    """The loop: until the budget is spent, Stop is pressed or no model trains, draw a batch,
    let the callbacks set each model's lr, step every model on it, and test every `eval_every`
    steps. Ctrl-C ends it at a step boundary. Whatever ends it, the histories are complete."""
    emit(run, "on_start")
    try:
        while run.active and not (stop is not None and stop.is_set()) and not run.budget_spent:
            x, y = next(run.batches)             # the same batch for every model
            emit(run, "before_step")             # each model's lr: schedule, warm-up
            step_all(run, x, y)                  # each model's step; its row stays on the device
            if run.flush_due:
                run.flush()                      # rows to the histories, divergence checked
            emit(run, "on_step")                 # progress, live plots, checkpoints, stops
            if run.step % eval_every == 0:
                evaluate_all(run, *test)         # precise BatchNorm, then the test images
        finish_all(run, stop, test)              # a last test; "finished" or "stopped"
    except ContextLostError as err:              # the GPU is gone: its rows with it
        run.pending = {name: [] for name in run.pending}
        for name in list(run.active):
            run.finish(name, "context lost", f"the GPU's context was lost at step {run.step}")
        raise err.resume_from(run.checkpoint) from err.__cause__
    except KeyboardInterrupt:
        run.flush()
        for name in list(run.active):
            run.finish(name, "interrupted", f"interrupted at step {run.step}")
    finally:
        close_run(run)


# ---------------------------------------------------------------------------------------------
# The loop's named steps


def emit(run: Run, moment: str) -> None:
    """Call every callback's `moment` ("on_start", "before_step", ...) with the run."""
    for cb in run.callbacks:
        getattr(cb, moment)(run)


def start_run(models: dict[str, nn.Module], recipe: Recipe, batches: Batches,
              max_steps: int | None, max_seconds: float | None, grad_every: int,
              graphs: str = "auto") -> Run:
    """Move the models to the batches' device in training mode, and give each a Step and a
    History."""
    device = batches.device
    for model in models.values():
        model.to(device).train()
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
    steppers = {name: make_step(name, m, recipe, device, graphs, norms=grad_every > 0)
                for name, m in models.items()}
    histories = {name: History(name, setup_of(m, recipe, batches.batch_size, batches.seed),
                               device=str(device), layers=steppers[name].layers)
                 for name, m in models.items()}
    return Run(models, steppers, histories, recipe, device, max_steps, max_seconds,
               grad_every=grad_every, active=list(models),
               pending={name: [] for name in models}, batches=batches, bn_from=batches.x,
               warming_up={name for name, m in models.items() if warms_up(m, recipe)})


def step_all(run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step of every model still training, on the same batch, at the lr the callbacks set;
    their rows wait on the device until the next flush."""
    x, norms = layout(x, run.device), bool(run.grad_every) and run.step % run.grad_every == 0
    for name in run.active:
        lr = run.lr[name]
        run.histories[name].lr.append(lr)
        run.pending[name].append((run.step + 1, run.steppers[name](x, y, lr, norms=norms)))
    run.step += 1


def evaluate_all(run: Run, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
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
    emit(run, "on_eval")


def finish_all(run: Run, stop: threading.Event | None, test: Tensors) -> None:
    """The loop is over: the models still training end "stopped" when Stop was pressed; else
    after a last evaluation (unless this step had one) they end "finished"."""
    run.flush()
    if stop is not None and stop.is_set():
        status, message = "stopped", f"Stop pressed: training ended at step {run.step}"
    else:
        status, message = "finished", ""
        if run.last_eval != run.step:
            evaluate_all(run, *test)
    for name in list(run.active):
        run.finish(name, status, message)


def close_run(run: Run) -> None:
    """Whatever ended the run (finished, Stop, Ctrl-C, an error): every row into the histories,
    each one's time, engine and the steps it trained; then the callbacks' on_end."""
    run.flush()
    for name, h in run.histories.items():
        h.seconds = run.elapsed
        h.setup.update(engine=run.steppers[name].engine, steps=len(h.step))
    emit(run, "on_end")


# ---------------------------------------------------------------------------------------------
# Checks made before any tensor work, the budget, and each model's step


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
