"""Where a model runs and how a function borrows it, in one place.

- `pick_device("auto")` chooses CUDA, then Apple's MPS, then the CPU.
- A function that takes a model and data moves the data to the model's device itself
  (`to_device_of`): `gradient_profile`, `evaluate`, `landscape.loss_surface`, ... So a lesson
  never needs a hand-written `.to(device)`, whether its nets were trained on a GPU or not.
- `train.compare` moves the models to its device and leaves them there.
- A function that reads a model in another mode (eval mode, say) gives it back in the mode it
  found it in (`in_mode`), even after an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


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
    return torch.device(available_devices()[-1])


def device_of(model: nn.Module) -> torch.device:
    """Where the model's parameters live (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def to_device_of(model: nn.Module, *tensors: torch.Tensor | None) -> tuple:
    """The tensors (None stays None) on the model's device."""
    device = device_of(model)
    return tuple(t if t is None else t.to(device) for t in tensors)


def available_devices() -> list[str]:
    """The device types this machine can train on, the one "auto" picks last: "cpu", then
    Apple's "mps" and "cuda" where present (the tests run their device checks on each)."""
    found = ["cpu"]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    if torch.cuda.is_available():
        found.append("cuda")
    return found


@contextmanager
def in_mode(model: nn.Module, training: bool = False) -> Iterator[nn.Module]:
    """`model` in eval mode (or, `training=True`, training mode) inside the `with` block, and
    back in the mode it was in afterwards, even after an exception."""
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)
