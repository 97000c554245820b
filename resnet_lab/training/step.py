"""One model's training step as an object: the seam between the training loop and the device.

    step = Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    row = step(x, y, lr=0.1)      # a tensor on the device: [loss, error, norm_1, ..., norm_L]

`Step` is the eager step: forward (bf16 autocast on CUDA), loss, backward, the per-layer
gradient norms read from `.grad` in one `torch._foreach_norm`, then the optimizer's step. It
returns its numbers as one tensor on the device and reads nothing back to the host, so a loop
can keep a GPU busy and copy many rows at once (`train.compare` does, once per flush).

On CUDA the same step runs as a captured graph: `captured.CapturedStep`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..instruments.hooks import layer_norms, watched_weights
from ..nets.devices import device_of

GRAPH_MODES = ("auto", "off", "require")


def autocast(device: torch.device, cache: bool = True):
    """bf16 autocast on CUDA (inside a graph capture: no weight cache), a no-op elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda",
                          cache_enabled=cache)


def layout(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images in channels-last on CUDA (faster convolutions there), as they are elsewhere."""
    return x.contiguous(memory_format=torch.channels_last) \
        if device.type == "cuda" and x.dim() == 4 else x


def classification_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The fraction of wrong answers (1 - accuracy), on the device."""
    return (out.argmax(1) != y).float().mean()


class Step:
    """Forward, loss, backward, norms and the optimizer's step for one model.

    `loss_fn(output, target)` is cross-entropy by default (any loss works, e.g. F.mse_loss);
    `error_fn` gives the row's error column (None: NaN). With `norms=False` the row is just
    [loss, error]. `engine` says how the step runs ("eager", or why a graph is off).
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 loss_fn: Callable = F.cross_entropy,
                 error_fn: Callable | None = classification_error, norms: bool = True,
                 name: str = "model"):
        self.model, self.optimizer, self.name = model, optimizer, name
        self.loss_fn, self.error_fn = loss_fn, error_fn
        self.layers, self.weights = watched_weights(model, False) if norms else ([], [])
        self.device = device_of(model)
        self.engine = "eager"

    @property
    def width(self) -> int:
        """The length of a row: loss, error and one norm per watched layer."""
        return 2 + len(self.layers)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def load_optimizer_state(self, state: dict) -> None:
        """Momentum and settings from `optimizer.state_dict()` (a checkpoint): only through
        the step, which owns the learning rate."""
        self.optimizer.load_state_dict(state)

    def settle(self) -> int:
        """Called by the flush before it reads the rows: how many of the rows made since the
        last flush are void (0: none; an eager step's never are)."""
        return 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float | None = None,
                 norms: bool = True) -> torch.Tensor:
        """One training step on (x, y); `norms=False` leaves the norms NaN (not computed)."""
        if lr is not None:
            self.set_lr(lr)
        return self.compute(x, y, norms)

    def compute(self, x: torch.Tensor, y: torch.Tensor, norms: bool = True,
                set_to_none: bool = True, cache: bool = True) -> torch.Tensor:
        """The step itself. `set_to_none=False` zeroes `.grad` in place instead of dropping it
        (a captured graph's gradients must stay where they are)."""
        with autocast(self.device, cache):
            out = self.model(x)
        loss = self.loss_fn(out.float(), y)
        self.optimizer.zero_grad(set_to_none=set_to_none)
        loss.backward()
        error = self.error_fn(out, y) if self.error_fn else loss.new_full((), float("nan"))
        row = [loss.detach().float().reshape(1), error.detach().float().reshape(1)]
        if self.weights:
            row.append(layer_norms(self.weights, [w.grad for w in self.weights]) if norms
                       else loss.new_full((len(self.weights),), float("nan")))
        self.optimizer.step()
        return torch.cat(row)


def fused_sgd_problem(device: torch.device) -> str:
    """"" when SGD can read a tensor learning rate on `device` (fused=True), else why not."""
    try:
        weight = torch.zeros(2, device=device, requires_grad=True)
        opt = torch.optim.SGD([weight], lr=torch.tensor(0.1, device=device), momentum=0.9,
                              fused=True)
        weight.grad = torch.ones_like(weight)
        opt.step()
        return ""
    except (RuntimeError, TypeError, ValueError) as err:
        return f"fused SGD with a tensor learning rate is not supported: {err}"
