"""Lesson 2, residual learning: F -> 0 is easier than H(x) = x, skips carry the gradient to
every block, and a ResNet's layer responses are small."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import data
from ..evaluation import bn_images, evaluate, precise_bn
from ..hooks import (
    ActivationStats,
    GradientNorms,
)
from ..lesson import TINY, Verdict
from ..models import cifar_resnet, deep_mlp
from ..step import Step


def fit_identity(stack: nn.Module, steps: int = 300, seed: int = 0) -> list[float]:
    """Train `stack` to map x to x (mean squared error, Adam 1e-3) on fresh random vectors
    each step; return the losses. The lab's training step does the work (`step.Step`, here
    with Adam and an MSE loss), and the losses come to the host in one copy at the end."""
    g = torch.Generator().manual_seed(seed)
    train_step = Step(stack, torch.optim.Adam(stack.parameters(), lr=1e-3), loss_fn=F.mse_loss,
                      error_fn=None, norms=False)
    rows = [train_step(x, x) for x in (torch.randn(256, 64, generator=g) for _ in range(steps))]
    return torch.stack(rows)[:, 0].tolist()


IDENTITY_STACKS = {   # name: deep_mlp options; the same 20 layers of width 64 in each
    "plain, default init": dict(skip=0.0),
    "plain, He init": dict(skip=0.0, init="he"),
    "residual, branch x 0.1": dict(skip=1.0, branch_scale=0.1),
}


def identity_fits(steps: int = 300, seed: int = 0) -> dict[str, list[float]]:
    """Each stack of `IDENTITY_STACKS` trained to output its input: {name: losses}. The He-init
    plain stack is the control: its signal does not vanish at the start, so what is left is
    the difference between learning H(x) = x and learning F(x) = 0."""
    return {name: fit_identity(deep_mlp(20, 64, "relu", seed=seed, **options).blocks,
                               steps, seed)
            for name, options in IDENTITY_STACKS.items()}


def identity_is_easier(fits: dict[str, list[float]]) -> Verdict:
    best_plain = min(v[-1] for k, v in fits.items() if k.startswith("plain"))
    residual = fits["residual, branch x 0.1"][-1]
    return Verdict("F -> 0 is easier than H(x) = x", best_plain / (100 * residual),
                   f"residual MSE {residual:.1e} vs the better plain stack {best_plain:.1e} "
                   "(claim: 100x lower)")


def block_gradients(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The gradient arriving at each block's output of a 56-layer net without normalization,
    plain and residual, for one batch of 16 random images: {name: per-block norms}."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 3, size, size, generator=g), torch.randint(0, 10, (16,), generator=g)
    grads = {}
    for name, skip in (("plain-56", 0.0), ("ResNet-56", 1.0)):
        net = cifar_resnet(56, skip=skip, norm=False, init="default", seed=seed)
        with GradientNorms(net, block_outputs=True) as norms:
            F.cross_entropy(net(x), y).backward()
        grads[name] = norms.block_values()[0]
    return grads


def skips_carry_the_gradient(grads: dict[str, np.ndarray]) -> Verdict:
    spread = {n: v.max() / max(v.min(), TINY) for n, v in grads.items()}
    return Verdict("skip connections carry the gradient to every block",
                   min(100 / spread["ResNet-56"], spread["plain-56"] / 100),
                   f"largest/smallest block gradient: ResNet-56 {spread['ResNet-56']:.2g}, "
                   f"plain-56 {spread['plain-56']:.2g} (claim: under / over 100)")


def layer_response_stds(nets: dict[str, nn.Module], images: data.Dataset
                        ) -> dict[str, np.ndarray]:
    """He et al. Fig. 7: the std of every 3x3 layer's response (after BN), on 500 test images
    in eval mode, for the plain-56 and ResNet-56 of the degradation experiment. Each net's
    BatchNorm statistics are re-estimated on training images first (precise BN): with lagging
    running averages the stds would measure the lag, not the responses."""
    stds = {}
    for name in ("plain-56", "ResNet-56"):
        net = nets[name]
        responses = [n for n, _ in net.named_modules()
                     if n.startswith("layer") and n.endswith(("bn1", "bn2"))]
        precise_bn(net, bn_images(images.x_train))     # before the hooks: not recorded
        with ActivationStats(net, responses, train_only=False) as acts:
            evaluate(net, images.x_test[:500], images.y_test[:500])
        stds[name] = acts.stds()[0]
    return stds


def responses_are_smaller(stds: dict[str, np.ndarray]) -> Verdict:
    res, plain = stds["ResNet-56"].mean(), stds["plain-56"].mean()
    return Verdict("the ResNet's layer responses are smaller than the plain net's", plain / res,
                   f"mean std {res:.2f} vs {plain:.2f}")
