"""The record of a run: a `History` per model (plain lists of numbers that plots, the CLI's
JSON, the grid's files and saved runs all share), and saving and loading a whole run."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..nets.configs import config_to_dict
from ..nets.models import build, config_of, is_plain
from .recipes import Recipe


@dataclass
class History:
    """Everything recorded for one model. Steps count optimizer updates, from 1.

    - `step`, `train_loss`, `train_error`, `lr`: every training step (error = 1 - accuracy)
    - `test_step`, `test_loss`, `test_error`: every evaluation (BatchNorm statistics
      re-estimated first: `setup["eval_bn"]` says how)
    - `running_bn_test_error`: the last evaluation's test error read with BatchNorm's running
      averages instead, as training left them (None without BatchNorm): how far they lagged
    - `layers`, `grad_step`, `grad_norms`: per-layer weight-gradient norms, one row per
      recorded step, layers in network order
    - `setup`: how the model was trained (`setup_of`): its config's fields, whether it was
      plain, the whole recipe, batch size, data seed, the data, the steps it trained and the
      engine that stepped it
    - `status`: "running", "finished", "stopped" (Stop pressed), "interrupted" (Ctrl-C),
      "diverged" (NaN/inf loss), "early-stopped" or "context lost" (a CUDA fault that ends
      the process's use of the GPU); `message` says why in words
    """

    name: str
    setup: dict = field(default_factory=dict)
    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_error: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    test_step: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_error: list[float] = field(default_factory=list)
    running_bn_test_error: float | None = None
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

    def latest_norms(self) -> dict[str, float] | None:
        """Layer -> gradient norm at the last recorded step; None before any was recorded."""
        return dict(zip(self.layers, self.grad_norms[-1], strict=True)) if self.grad_norms \
            else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """A History from `to_dict`'s form."""
        return cls(**d)


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the `window - 1` before it (at the start, of those there
    are): a curve of noisy batch losses or errors, smoothed, as long as it was."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def setup_of(model: nn.Module, recipe: Recipe, batch_size: int, seed: int) -> dict:
    """What a History records about how its model was trained: the model's config (its
    weights seed as "weights_seed"), whether every skip gate was 0 (plain), the whole recipe,
    the batch size and the data seed ("seed")."""
    config = config_of(model)
    net = config_to_dict(config) if config is not None else {}
    return {**net, "weights_seed": net.get("seed"), "plain": is_plain(model),
            "recipe": asdict(recipe), "batch_size": batch_size, "seed": seed}


RUN_FORMAT = "resnet-lab run 4"   # what save_run writes and load_run reads


def save_run(path: str | Path, models: dict[str, nn.Module], histories: dict[str, History]
             ) -> Path:
    """Save weights, each model's whole config (to rebuild it, every skip gate as it is now)
    and the histories (whose setups hold the whole recipe), in one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    configs = {n: config_of(m) for n, m in models.items()}
    torch.save({"format": RUN_FORMAT,
                "models": {n: {"config": None if configs[n] is None else
                               config_to_dict(configs[n]),
                               "state_dict": {k: v.cpu() for k, v in m.state_dict().items()}}
                           for n, m in models.items()},
                "histories": {n: h.to_dict() for n, h in histories.items()}}, path)
    return path


def load_run(path: str | Path, device: str | torch.device = "cpu"
             ) -> tuple[dict[str, nn.Module], dict[str, History]]:
    """Load a run saved with `save_run`: rebuilt models (with their weights and skip gates) on
    `device`, and histories. A model that cannot be rebuilt as it was saved is refused with a
    ValueError."""
    saved = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != RUN_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else None
        raise ValueError(f"{path} is not a resnet-lab run file of this version (expected "
                         f"format {RUN_FORMAT!r}, found {found!r})")
    histories = {n: History.from_dict(d) for n, d in saved["histories"].items()}
    models = {}
    for name, entry in saved["models"].items():
        if entry["config"] is None:
            raise ValueError(f"model {name!r} in {path} was not built by resnet_lab; "
                             "load its state_dict by hand")
        model = build(entry["config"])
        try:
            model.load_state_dict(entry["state_dict"])
        except RuntimeError as error:
            raise ValueError(f"model {name!r} in {path} cannot be restored as it was saved: "
                             f"its weights do not fit the net its config builds ({error})"
                             ) from None
        models[name] = model.to(device)
    return models, histories
