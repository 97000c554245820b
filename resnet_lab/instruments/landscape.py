"""Loss-landscape slices with filter-normalized random directions (Li et al. 2018).

A direction d has, for every filter of every conv/linear weight, the same norm as that filter
in the trained model; biases and BatchNorm parameters are not moved. The loss is then measured
at theta + a*d1 (+ b*d2) on a fixed batch, BatchNorm using that batch's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets.devices import in_mode, to_device_of


def filter_normalized_direction(model: nn.Module, seed: int = 0) -> list[torch.Tensor]:
    """A random direction, one tensor per parameter, scaled filter by filter (zero for 1-D)."""
    g = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        d = torch.randn(p.shape, generator=g).to(p.device)
        if p.dim() <= 1:
            d.zero_()
        else:
            norms_p = p.detach().flatten(1).norm(dim=1)
            norms_d = d.flatten(1).norm(dim=1)
            d *= (norms_p / (norms_d + 1e-10)).view(-1, *[1] * (p.dim() - 1))
        direction.append(d)
    return direction


@torch.no_grad()
def loss_surface(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 directions: Sequence[list[torch.Tensor]], alphas: Sequence[float]
                 ) -> np.ndarray:
    """Loss at theta + sum_k a_k d_k over the grid `alphas` (1-D: len(alphas); 2-D: a square).

    The model's parameters and buffers are restored afterwards. x and y go to the model's
    device.
    """
    x, y = to_device_of(model, x, y)
    params = [p for p in model.parameters()]
    theta = [p.detach().clone() for p in params]
    buffers = [b.detach().clone() for b in model.buffers()]
    grid = np.array(alphas, dtype=float)
    shape = (len(grid),) * len(directions)
    losses = np.zeros(shape)
    # in training mode: BatchNorm uses the batch's statistics at every point. Li et al.'s code
    # evaluates in eval mode, with the trained net's running statistics, which fit only theta
    try:
        with in_mode(model, training=True):
            for index in np.ndindex(*shape):
                for p, t, *ds in zip(params, theta, *directions, strict=True):
                    p.copy_(t)
                    for k, d in enumerate(ds):
                        p.add_(d, alpha=float(grid[index[k]]))
                losses[index] = F.cross_entropy(model(x), y).item()
    finally:
        for p, t in zip(params, theta, strict=True):
            p.copy_(t)
        for b, old in zip(model.buffers(), buffers, strict=True):
            b.copy_(old)
    return losses
