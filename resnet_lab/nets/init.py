"""Initialization: how a net's first weights are drawn. PyTorch's own default or He et al.'s
(2015) kaiming-normal, BatchNorm at (1, 0), and seeded builds that draw every tensor from a
generator of their own, so that "seed 0" means the same weights whatever else ran before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from .blocks import Bottleneck, ResidualBlock
from .checks import INITS, check_choice


def reset_default(layer: nn.Conv2d | nn.Linear, generator: torch.Generator | None = None,
                  bias: bool = True) -> None:
    """PyTorch's own initialization of a conv or linear layer (its `reset_parameters`), drawn
    from `generator`: weights kaiming-uniform with a = sqrt(5), bias uniform in
    +-1/sqrt(fan_in) (left as it is with `bias=False`)."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if bias and layer.bias is not None:
        default_bias(layer, generator)


def default_bias(layer: nn.Conv2d | nn.Linear, generator: torch.Generator | None = None
                 ) -> None:
    """PyTorch's default bias of a conv or linear layer: uniform in +-1/sqrt(fan_in)."""
    bound = 1 / math.sqrt(layer.weight[0].numel())     # fan_in: one output's inputs
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def initialize(model: nn.Module, init: str = "he", zero_init_residual: bool = False,
               generator: torch.Generator | None = None) -> None:
    """Give every parameter and buffer of a ResNet (or any block) its initial value, drawing
    from `generator` (torch's global generator when None, as any PyTorch module does).

    He init (kaiming-normal, fan-out) of the convs, or PyTorch's default (`init="default"`);
    the fc layer always PyTorch's default, as in torchvision; BatchNorm to (1, 0) with fresh
    statistics. A conv has a bias only in a net without BatchNorm (with it, BN's shift does
    that job): He init zeroes it, the default init draws it after every other tensor, so
    that a net with and one without BatchNorm from one seed start from the same weights.
    `zero_init_residual` zeroes the last BN of every residual branch (or its last conv when
    there is no BN), so each block starts as the identity (Goyal et al. 2017).
    """
    check_choice("init", init, INITS)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and init == "he":
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            reset_default(m, generator, bias=isinstance(m, nn.Linear))
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()                       # weight 1, bias 0, statistics reset
    if init == "default":
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                default_bias(m, generator)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, ResidualBlock):
                last = getattr(m, m.last_norm)
                if m.preact or not isinstance(last, nn.BatchNorm2d):
                    last = m.conv3 if isinstance(m, Bottleneck) else m.conv2
                nn.init.zeros_(last.weight)


M = TypeVar("M", bound=nn.Module)


def build_seeded(make: Callable[[], M], init: Callable[[M, torch.Generator | None], None],
                 seed: int | None) -> M:
    """`make()` built on the meta device (no memory, no random draws), then every parameter
    and buffer set by `init(model, generator)` with a generator of its own seeded by `seed`.

    So a seeded build never reads or changes torch's global random state, whatever other
    threads do with it; seed=None draws from the global generator like any PyTorch module.
    """
    with torch.device("meta"):
        model = make()
    model = model.to_empty(device="cpu")
    init(model, None if seed is None else torch.Generator().manual_seed(seed))
    return model


def initialize_mlp(model: nn.Module, init: str = "default",
                   generator: torch.Generator | None = None) -> None:
    """Every linear layer of a deep MLP: PyTorch's default init, or (`init="he"`) He et al.'s
    kaiming-normal weights for ReLU nets with zero biases, drawn from `generator`."""
    check_choice("init", init, INITS)
    for layer in model.modules():
        if isinstance(layer, nn.Linear) and init == "he":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=generator)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            reset_default(layer, generator)
