"""Evaluation that measures the net: precise BatchNorm first, then eval mode.

In training, BatchNorm normalizes with the statistics of the batch at hand; in eval mode with
its running averages, which move only 10 % of the way towards each new batch (momentum 0.1).
While the weights move fast, those averages lag behind the net, and an eval-mode number then
measures the lag, not the net: a plain-56 that has learned its batches can score at chance on
the test set. The fix is *precise BatchNorm* (Wu & Johnson 2021, "Rethinking 'Batch' in
BatchNorm"): before evaluating, re-estimate every BatchNorm's statistics as a plain average
(no momentum) over a fixed set of training images. PyTorch ships it as
`torch.optim.swa_utils.update_bn`, which `precise_bn` calls.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn

from ..instruments.hooks import HOOK_KINDS
from ..nets.checks import check_count
from ..nets.devices import device_of, in_mode, to_device_of
from .step import autocast, layout

PRECISE_BN_IMAGES = 1024   # training images the statistics are re-estimated on
PRECISE_BN_BATCH = 128     # in batches of this many (the lessons' training batch)


def bn_images(x_train: torch.Tensor, n: int = PRECISE_BN_IMAGES) -> torch.Tensor:
    """A fixed sample of `n` training images (the same for every call: its own generator)."""
    check_count("n", n)
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
    return x_train[order[:n].to(x_train.device)]


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def has_batchnorm(model: nn.Module) -> bool:
    """True when `model` keeps BatchNorm running statistics (eval mode reads them)."""
    return bool(batchnorms(model))


@torch.no_grad()
def precise_bn(model: nn.Module, x_train: torch.Tensor, batch_size: int = PRECISE_BN_BATCH
               ) -> int:
    """Re-estimate every BatchNorm's statistics of `model` over a fixed sample of
    `PRECISE_BN_IMAGES` of the training images `x_train` (`bn_images`), in training-mode
    batches of `batch_size`, as a plain average over the batches (no momentum: torch's
    `update_bn`). Returns how many images were used: 0 when the model has no BatchNorm.

    The passes run on a copy of the model without its hooks, so an instrument attached to the
    model records nothing, and an interruption leaves the model as it was; only the new
    statistics are copied back. The images go to the model's device."""
    check_count("batch_size", batch_size)
    if not has_batchnorm(model):
        return 0
    images, device = bn_images(x_train), device_of(model)
    twin = unhooked_copy(model)
    with autocast(device):
        update_bn([layout(images[i:i + batch_size].to(device), device)
                   for i in range(0, len(images), batch_size)], twin)
    for mine, estimated in zip(batchnorms(model), batchnorms(twin), strict=True):
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            getattr(mine, name).copy_(getattr(estimated, name))
    return len(images)


def unhooked_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` without its module hooks (they stay on the model itself): the
    instruments that own them are neither copied nor called."""
    modules = list(model.modules())
    saved = [[getattr(m, h) for h in HOOK_KINDS] for m in modules]
    try:
        for m in modules:
            for h in HOOK_KINDS:
                setattr(m, h, OrderedDict())
        return copy.deepcopy(model)
    finally:
        for m, hooks in zip(modules, saved, strict=True):
            for h, value in zip(HOOK_KINDS, hooks, strict=True):
                setattr(m, h, value)


def describe_bn(model: nn.Module, n: int | None) -> str:
    """What statistics an evaluation of `model` used, in words (for a History's setup)."""
    if not has_batchnorm(model):
        return "no BatchNorm"
    if not n:
        return "BatchNorm running averages (momentum 0.1)"
    return f"precise BatchNorm, re-estimated on {n:,} training images"


@contextmanager
def precise_statistics(model: nn.Module, bn_from: torch.Tensor | None):
    """Inside: the model's BatchNorm statistics re-estimated on the training images `bn_from`
    (`precise_bn`; None: left as they are). Afterwards the running averages are put back, so
    training goes on as it left them."""
    if bn_from is None:
        yield
        return
    saved = [b.clone() for m in batchnorms(model) for b in (m.running_mean, m.running_var)]
    try:
        precise_bn(model, bn_from)
        yield
    finally:
        for buffer, old in zip((b for m in batchnorms(model)
                                for b in (m.running_mean, m.running_var)), saved, strict=True):
            buffer.copy_(old)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000, *,
             bn_from: torch.Tensor | None = None) -> tuple[float, float]:
    """Mean cross-entropy loss and error rate (1 - accuracy) of `model` on (x, y), in eval
    mode (restored afterwards, even after an exception). With `bn_from` (training images) the
    BatchNorm statistics are re-estimated on them for this evaluation (`precise_statistics`);
    without, eval mode uses whatever statistics the model holds. x and y go to the model's
    device."""
    with precise_statistics(model, bn_from):
        return measure(model, x, y, batch_size)


@torch.no_grad()
def mistakes(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000, *,
             bn_from: torch.Tensor | None = None) -> torch.Tensor:
    """Which images of (x, y) the model gets wrong (a bool per image, on the CPU), measured as
    `evaluate` measures its error: their mean is that error."""
    wrong = []
    with precise_statistics(model, bn_from), in_mode(model, training=False):
        for i in range(0, len(x), batch_size):
            xb, yb = to_device_of(model, x[i:i + batch_size], y[i:i + batch_size])
            with autocast(device_of(model)):
                wrong.append((model(layout(xb, device_of(model))).argmax(1) != yb).cpu())
    return torch.cat(wrong)


@torch.no_grad()
def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int
            ) -> tuple[float, float]:
    """`evaluate` with the statistics the model holds."""
    device = device_of(model)
    loss = errors = 0.0
    with in_mode(model, training=False):
        for i in range(0, len(x), batch_size):
            xb, yb = to_device_of(model, x[i:i + batch_size], y[i:i + batch_size])
            with autocast(device):
                out = model(layout(xb, device))
            loss += F.cross_entropy(out.float(), yb, reduction="sum").item()
            errors += (out.argmax(1) != yb).sum().item()
    return loss / len(x), errors / len(x)
