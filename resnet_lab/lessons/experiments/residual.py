"""Lesson 2, residual learning: F -> 0 is easier than H(x) = x, skips carry the gradient to
every block, and a ResNet's layer responses are small."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...instruments.hooks import ActivationStats, GradientNorms
from ...nets.models import build, cifar_resnet, config_of, deep_mlp
from ...training import data
from ...training.comparison import Comparison, measured_setup, one_change
from ...training.evaluation import evaluate, precise_bn
from ...training.step import Step
from ..verdicts import TINY, Verdict, claim


def fit_identity(stack: nn.Module, steps: int = 300, seed: int = 0, lr: float = 1e-3
                 ) -> list[float]:
    """Train `stack` to map x to x (mean squared error, Adam at `lr`) on fresh random vectors
    each step; return the losses. The lab's training step does the work (`step.Step`, here
    with Adam and an MSE loss), and the losses come to the host in one copy at the end."""
    g = torch.Generator().manual_seed(seed)
    train_step = Step(stack, torch.optim.Adam(stack.parameters(), lr=lr), loss_fn=F.mse_loss,
                      error_fn=None, norms=False)
    rows = [train_step(x, x) for x in (torch.randn(256, 64, generator=g) for _ in range(steps))]
    return torch.stack(rows)[:, 0].tolist()


IDENTITY_BRANCH = dict(depth=20, width=64, activation="relu", hidden=128, branch_scale=1.0)
IDENTITY_STACKS = {   # name: deep_mlp options besides IDENTITY_BRANCH's
    "plain": dict(skip=0.0),
    "residual": dict(skip=1.0),
    "plain, signal kept (control)": dict(skip=0.0, branch_scale=18 ** 0.5),
}
IDENTITY_PAIR = ("residual", "plain")   # the verdict's pair: only the skip differs


def identity_stacks(seed: int = 0) -> dict[str, nn.Module]:
    """The stacks of `IDENTITY_STACKS` (whole `deep_mlp`s; the fit uses their `blocks`). Each
    block is h <- skip * h + W2 relu(W1 h + b1) + b2 with 128 hidden units, so the plain
    stack too can compute the identity (relu(h) - relu(-h)); plain and residual have the same
    layers, the same initial weights and the same branch scale, and differ only in the skip.
    The control is the plain stack with one change, its branch scale sqrt(18) in place of 1,
    which keeps the signal's size through the 20 blocks: PyTorch's default init draws each
    linear layer's weights with variance 1 / (3 fan-in), so W1 keeps a third of the signal's
    second moment, the ReLU half of that and W2 a third again: 1/18 per block. If only the
    plain stack failed, the vanishing signal would be the culprit, not the task."""
    return {name: deep_mlp(**{**IDENTITY_BRANCH, **options}, seed=seed)
            for name, options in IDENTITY_STACKS.items()}


@torch.no_grad()
def set_identity_weights(stack: nn.Sequential) -> nn.Sequential:
    """Give every block of a plain identity stack the weights that make it compute h -> h
    exactly: W1 = [I; -I], W2 = [I, -I] / branch scale, zero biases, since
    h = relu(h) - relu(-h). The plain stack can represent the identity; it has to find it."""
    for block in stack:
        eye = torch.eye(block.fc.out_features)
        block.fc1.weight.copy_(torch.cat([eye, -eye]))
        block.fc.weight.copy_(torch.cat([eye, -eye], 1) / block.branch_scale)
        block.fc1.bias.zero_()
        block.fc.bias.zero_()
    return stack


def measuring_inputs(seed: int = 0) -> torch.Tensor:
    """The 1,024 random inputs of std 1 that the identity stacks are measured on (not trained
    on): one batch, the same for every measurement of a seed."""
    return torch.randn(1024, IDENTITY_BRANCH["width"],
                       generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def signal_through(stacks: dict[str, nn.Module], seed: int = 0) -> dict[str, tuple[float, float]]:
    """Each identity stack's output for 1,024 random inputs of std 1: its std, and the part of
    it that varies with the input (each output's std across the inputs, root mean square over
    the outputs): how much of the signal gets through its 20 blocks. The rest is a constant
    (at the start, what the blocks' biases add)."""
    x = measuring_inputs(seed)
    outputs = {name: net.blocks(x) for name, net in stacks.items()}
    return {name: (y.std().item(), y.std(0).pow(2).mean().sqrt().item())
            for name, y in outputs.items()}


@torch.no_grad()
def branch_sizes(stack: nn.Module, seed: int = 0) -> np.ndarray:
    """Each block's residual against its input, ||F(h)|| / ||h||, for 1,024 random inputs of
    std 1 passed through `stack` (an identity stack's `blocks`): how far each block is from
    computing the identity by F = 0, the point the notes say a residual block has to reach."""
    h = measuring_inputs(seed)
    sizes = []
    for block in stack:
        sizes.append((block.residual(h).norm() / h.norm()).item())
        h = block(h)
    return np.array(sizes)


def identity_fits(steps: int = 300, seed: int = 0, lr: float = 1e-3,
                  stacks: dict[str, nn.Module] | None = None) -> dict[str, list[float]]:
    """Each stack of `identity_stacks` (or of `stacks`, trained in place, so that they can be
    measured after) trained to output its input: {name: losses}."""
    stacks = identity_stacks(seed) if stacks is None else stacks
    return {name: fit_identity(net.blocks, steps, seed, lr) for name, net in stacks.items()}


def shallow_identity_fits(depths: tuple[int, ...] = (2, 5), steps: int = 300, seed: int = 0
                          ) -> dict[str, list[float]]:
    """A positive control for `identity_fits`: the plain stack's blocks, fewer of them (one
    change, the depth), trained to output their input as the 20-block stacks are. If they
    learn it, the plain block can find the identity, and the 20-block stack's failure is its
    depth's: {name: losses}."""
    plain = {**IDENTITY_BRANCH, **IDENTITY_STACKS["plain"]}
    stacks = {f"plain, {d} blocks": deep_mlp(**{**plain, "depth": d}, seed=seed) for d in depths}
    return identity_fits(steps, seed, stacks=stacks)


def identity_pair(steps: int = 300, seed: int = 0, pair: tuple[str, str] = IDENTITY_PAIR,
                  lr: float = 1e-3) -> Comparison:
    """What differs between two of the identity stacks, as `identity_fits` trains them."""
    nets = identity_stacks(seed)
    fit = dict(inputs="256 random 64-d vectors a step", inputs_seed=seed, steps=steps,
               optimizer=f"Adam, lr {lr:.0e}".replace("e-0", "e-"))
    return one_change(*(measured_setup(nets[name], **fit) for name in pair), " vs ".join(pair))


@claim
def identity_is_easier(fits: dict[str, list[float]]) -> Verdict:
    residual, plain = (fits[name] for name in IDENTITY_PAIR)
    control = fits["plain, signal kept (control)"]
    fell = "; ".join(f"{name} {losses[0] / losses[-1]:.3g}x" for name, losses in
                     (("residual", residual), ("plain", plain), ("control", control)))
    return Verdict("F -> 0 is easier than H(x) = x (F: the stack's residual, the sum of its "
                   "branches), in a 20-block MLP stack trained with Adam for 300 steps: the "
                   "residual stack ends far closer to the identity, and gets there by learning",
                   min(plain[-1], control[-1], residual[0]) / (10 * residual[-1]),
                   f"final MSE: residual {residual[-1]:.1e}, plain {plain[-1]:.1e} (the same "
                   f"stack without the skip), control {control[-1]:.1e}; from its first step "
                   f"the MSE fell: {fell} (claim: the residual's final MSE 10x lower than the "
                   "plain's and the control's, and fallen 10x from its start)")


def gradient_nets(seed: int = 0) -> dict[str, nn.Module]:
    """A 56-layer net without normalization (PyTorch's default init), plain and residual,
    from one weights seed: the same tensors, only the skip differs."""
    return {name: cifar_resnet(56, skip=skip, norm=False, init="default", seed=seed)
            for name, skip in (("plain-56", 0.0), ("ResNet-56", 1.0))}


def block_gradients(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The gradient arriving at each block's output of the `gradient_nets`, for one batch of
    16 random images: {name: per-block norms}."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 3, size, size, generator=g), torch.randint(0, 10, (16,), generator=g)
    grads = {}
    for name, net in gradient_nets(seed).items():
        with GradientNorms(net, block_outputs=True) as norms:
            F.cross_entropy(net(x), y).backward()
        grads[name] = norms.block_values()[0]
    return grads


def gradient_pair(size: int, seed: int = 0) -> Comparison:
    """What differs between the two nets of `block_gradients`."""
    batch = dict(inputs=f"16 random {size}x{size} images", inputs_seed=seed)
    nets = gradient_nets(seed)
    return one_change(*(measured_setup(net, **batch) for net in nets.values()), " vs ".join(nets))


@claim
def skips_carry_the_gradient(grads: dict[str, np.ndarray]) -> Verdict:
    spread = {n: v.max() / max(v.min(), TINY) for n, v in grads.items()}
    said = {n: f"{spread[n]:.2g}" if v.min() > 0 else
            f"infinite ({(v == 0).sum()} blocks' gradient is exactly 0 in float32)"
            for n, v in grads.items()}
    return Verdict("without BatchNorm, at initialization, skip connections carry the gradient "
                   "to every block",
                   min(100 / spread["ResNet-56"], spread["plain-56"] / 100),
                   f"largest/smallest block gradient: ResNet-56 {said['ResNet-56']}, "
                   f"plain-56 {said['plain-56']} (claim: ResNet-56 under 100, plain-56 over "
                   "100; the margin is the smaller of the two nets' margins)")


def layer_response_stds(nets: dict[str, nn.Module], images: data.Dataset, *,
                        as_initialised: bool = False) -> dict[str, np.ndarray]:
    """He et al. Fig. 7: the std of every 3x3 layer's response (after BN), on 500 test images
    in eval mode, for each net of the degradation experiment (with `as_initialised`, of the
    same nets as they started: rebuilt from their configs and seeds). Each net's BatchNorm
    statistics are re-estimated on training images first (precise BN): with lagging running
    averages the stds would measure the lag, not the responses."""
    stds = {}
    for name, net in nets.items():
        net = build(config_of(net)) if as_initialised else net
        responses = [n for n, _ in net.named_modules()
                     if n.startswith("layer") and n.endswith(("bn1", "bn2"))]
        precise_bn(net, images.x_train)     # before the hooks: not recorded
        with ActivationStats(net, responses, train_only=False) as acts:
            evaluate(net, images.x_test[:500], images.y_test[:500])
        stds[name] = acts.stds()[0]
    return stds


@claim
def responses_are_smaller(stds: dict[str, np.ndarray]) -> Verdict:
    res, plain = stds["ResNet-56"], stds["plain-56"]
    parts = ("first third", "middle third", "last third")
    pairs = list(zip(np.array_split(res, 3), np.array_split(plain, 3), strict=True))
    thirds = "; ".join(f"{part} {r.mean():.2f} vs {p.mean():.2f}"
                       for part, (r, p) in zip(parts, pairs, strict=True))
    widest = parts[int(np.argmax([p.sum() - r.sum() for r, p in pairs]))]
    return Verdict("averaged over its 3x3 layers, the ResNet's responses are smaller than the "
                   "plain net's", plain.mean() / res.mean(),
                   f"mean std {res.mean():.2f} vs {plain.mean():.2f} (by depth: {thirds}; most "
                   f"of the gap in the {widest}) (claim: the plain net's mean over the ResNet's "
                   "above 1)")
