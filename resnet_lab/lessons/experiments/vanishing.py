"""Lesson 1, vanishing gradients: the sigmoid MLP, frozen early layers, the degradation
problem (and the skips that remove it), and the regimes of plain and residual CNNs."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...instruments.hooks import (
    ActivationStats,
    GradientNorms,
    UpdateRatios,
    gradient_profile,
    relative_weight_change,
    weight_snapshot,
)
from ...instruments.regimes import EXPLODING_ABOVE, VANISHING_BELOW, first_last_ratio
from ...nets.models import cifar_resnet, deep_mlp
from ...training import data, train
from ...training.comparison import Comparison, initial_weights, measured_setup, one_change
from ...training.history import History
from ...training.recipes import Recipe
from ..verdicts import TINY, Verdict, claim


def mlp_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The deep MLPs' fixed batch: 64 random 64-dimensional inputs and labels (the explorer
    measures on the same one, so its readout and the lesson's verdict print the same ratio)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)


def mlp_profiles(seed: int = 0) -> dict[str, dict[str, float]]:
    """Gradient profiles of 20-layer plain MLPs (sigmoid, tanh, ReLU) at initialization, on
    `mlp_batch`."""
    return {f"plain {act}": gradient_profile(deep_mlp(20, activation=act, seed=seed),
                                             *mlp_batch(seed))
            for act in ("sigmoid", "tanh", "relu")}


def bias_control(seed: int = 0) -> dict[str, tuple[dict[str, float], float]]:
    """Why the default-init ReLU MLP's first/last ratio vanishes. For the 20-layer ReLU MLP
    with PyTorch's default init, the same net with every block's bias set to 0, and the He
    init net (zero biases): the gradient profile on `mlp_batch` (read its first/last ratio),
    and the forward signal's size at the last block's input over its size at the first's."""
    x, y = mlp_batch(seed)
    default = deep_mlp(20, activation="relu", seed=seed)
    no_biases = copy.deepcopy(default)
    with torch.no_grad():
        for block in no_biases.blocks:
            block.fc.bias.zero_()
    nets = {"default init": default, "default init, block biases 0": no_biases,
            "He init (zero biases)": deep_mlp(20, activation="relu", init="he", seed=seed)}
    out = {}
    for name, net in nets.items():
        with torch.no_grad():
            first = net.input(x)
            kept = float(net.blocks[:-1](first).norm() / first.norm())
        out[name] = (gradient_profile(net, x, y), kept)
    return out


LARGE = 1.5   # the exploding MLP's weights: He init's, times this


def large_weight_mlps(seed: int = 0) -> dict[str, nn.Module]:
    """A 20-layer ReLU MLP with He init, and a copy of it with every weight times `LARGE`:
    each of the copy's layers multiplies the backward signal by about that much."""
    he = deep_mlp(20, activation="relu", init="he", seed=seed)
    large = copy.deepcopy(he)
    with torch.no_grad():
        for layer in large.modules():
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(LARGE)
    return {"ReLU MLP, He init": he, f"ReLU MLP, He init x {LARGE:g}": large}


def explode_ratios(seed: int = 0) -> dict[str, tuple[float, float]]:
    """For each of `large_weight_mlps`, from one backward pass on `mlp_batch`: the gradient
    arriving at the first hidden layer's output over the last one's (||dL/dh_1|| /
    ||dL/dh_20||), and the first/last ratio of the weights' gradients."""
    x, y = mlp_batch(seed)
    ratios = {}
    for name, net in large_weight_mlps(seed).items():
        with GradientNorms(net, block_outputs=True) as norms:
            F.cross_entropy(net(x), y).backward()
        outputs = norms.block_values()[0]
        ratios[name] = (float(outputs[0] / outputs[-1]), first_last_ratio(norms.values()[0]))
    return ratios


@claim
def sigmoid_vanishes(profiles: dict[str, dict[str, float]]) -> Verdict:
    ratio = first_last_ratio(profiles["plain sigmoid"])
    return Verdict("vanishing gradient in a deep sigmoid MLP",
                   VANISHING_BELOW / max(ratio, TINY),
                   f"first-layer gradient = {ratio:.3g} x last layer's "
                   f"(vanishing below {VANISHING_BELOW:g})")


@dataclass
class MLPTraining:
    """What lesson 1 watches while the deep sigmoid MLP trains."""

    history: History
    moved: dict[str, float]           # layer -> ||W_end - W_start|| / ||W_start||
    activations: ActivationStats
    updates: UpdateRatios


WATCHED_SIGMOIDS = [f"blocks.{i}.act" for i in (0, 5, 10, 15, 19)]


def train_sigmoid_mlp(steps: int, seed: int = 0) -> MLPTraining:
    """The 20-layer sigmoid MLP trained with plain SGD (no weight decay: every change comes
    from the gradient) on 8x8 synthetic images, its sigmoids and update sizes watched."""
    images = data.synthetic(5000, 1000, size=8, channels=1, seed=seed)
    mlp = deep_mlp(20, activation="sigmoid", seed=seed)
    start = weight_snapshot(mlp)
    sgd = Recipe("plain SGD", lr=0.1, momentum=0.9, weight_decay=0.0, schedule="constant")
    with ActivationStats(mlp, WATCHED_SIGMOIDS, bins=40, hist_range=(0.0, 1.0)) as acts, \
            UpdateRatios(mlp) as updates:
        history = train.fit(mlp, images, steps=steps, batch_size=128, recipe=sgd,
                            name="sigmoid MLP", seed=seed)
    return MLPTraining(history, relative_weight_change(mlp, start), acts, updates)


@claim
def early_layers_freeze(moved: dict[str, float]) -> Verdict:
    first, last = "blocks.0.fc", list(moved)[-1]
    return Verdict("early layers stop learning",
                   moved[last] / (100 * max(moved[first], TINY)),
                   f"{first} moved {moved[first]:.1e}, {last} {moved[last]:.1e} "
                   "(claim: under 1/100 of it)")


WORSE = 1.1     # "trains worse": a final training loss (or error) 10% above the other net's


@claim
def deeper_plain_trains_worse(histories: dict[str, History]) -> Verdict:
    """He et al. Fig. 1: plain-56 ends with a higher training loss than plain-20, and a higher
    test error too (so it is not overfitting)."""
    p20, p56 = histories["plain-20"], histories["plain-56"]
    loss20, loss56 = p20.final_train_loss(), p56.final_train_loss()
    err20, err56 = p20.test_error[-1], p56.test_error[-1]
    return Verdict(f"after {len(p56.train_loss)} steps the deeper plain net has higher TRAINING "
                   "loss (not overfitting)",
                   min(loss56 / loss20, err56 / max(err20, TINY)) / WORSE,
                   f"plain-56 train loss {loss56:.2f} vs plain-20 {loss20:.2f}, test error "
                   f"{100 * err56:.0f}% vs {100 * err20:.0f}% (claim: plain-56's train loss and "
                   f"test error both at least {WORSE:g}x plain-20's)")


@claim
def skips_reduce_degradation(histories: dict[str, History]) -> Verdict:
    """He et al. Fig. 6: with skips the 56-layer net trains far better than plain-56. Reduced,
    not removed: ResNet-20's loss is printed beside it (at the lessons' budgets the deeper
    ResNet does not beat the shallower one)."""
    res, plain = histories["ResNet-56"].final_train_loss(), histories["plain-56"].final_train_loss()
    res20 = histories["ResNet-20"].final_train_loss()
    return Verdict("at 56 layers the skips help: ResNet-56 trains better than plain-56",
                   plain / res / WORSE,
                   f"train loss ResNet-56 {res:.2f} vs plain-56 {plain:.2f} (claim: plain "
                   f"{WORSE:g}x); ResNet-20 {res20:.2f}")


def scale_blind(net: nn.Module, x: torch.Tensor, layer: str = "conv1", factor: float = 2.0
                ) -> tuple[float, float]:
    """What BatchNorm makes of a conv's scale: the largest change of a copy of `net`'s outputs
    on `x` (BN on the batch's statistics, as in training) when `layer`'s weights are multiplied
    by `factor`, and the largest output, for scale."""
    net = copy.deepcopy(net).train()
    with torch.no_grad():
        before = net(x)
        net.get_submodule(layer).weight.mul_(factor)
        return (net(x) - before).abs().max().item(), before.abs().max().item()


def ratio_in_training(history: History) -> str:
    """The first/last-layer gradient ratio over a trained net's recorded steps
    (`History.grad_norms`), in one line: at step 1, its median, at the last step, and its
    smallest and largest."""
    ratios = np.array([first_last_ratio(row) for row in history.grad_norms])
    return (f"{history.name}: first/last-layer gradient ratio during training: step 1 "
            f"{ratios[0]:.2g}, median {np.median(ratios):.2g}, last step {ratios[-1]:.2g} "
            f"(smallest {ratios.min():.2g}, largest {ratios.max():.2g})")


def layer_learning(net: nn.Module, history: History, last: int = 50
                   ) -> dict[str, tuple[float, float]]:
    """How each recorded layer of a trained net can still learn: {layer: (growth, relative
    gradient)}, input end first. growth: ||W_end|| / ||W_start|| (the start rebuilt from the
    net's config and seed); relative gradient: ||∇W|| / ||W_end||, the median over the `last`
    recorded steps: how far one step moves the layer relative to its size (before the lr and
    momentum). A conv followed by BatchNorm computes the same function at any scale of its
    weights, so its gradient shrinks as 1 / ||W||, and the relative gradient as 1 / ||W||²
    (van Laarhoven 2017): weights grown 10x learn 100x slower."""
    start = initial_weights(history.setup)
    weights = dict(net.named_parameters())
    norms = np.array(history.grad_norms[-last:])
    out = {}
    for i, layer in enumerate(history.layers):
        w = weights[f"{layer}.weight"].detach().cpu()
        out[layer] = ((w.norm() / start[f"{layer}.weight"].norm()).item(),
                      float(np.median(norms[:, i])) / w.norm().item())
    return out


def by_thirds(values: list[float]) -> list[float]:
    """The medians of the first, middle and last third of per-layer `values`."""
    return [float(np.median(part)) for part in np.array_split(np.array(values), 3)]


SLOWER = 5      # "learns slowly": a first third's relative gradient under 1/5 of the last's
LEVEL = 3       # "about level": the last third's at most 3x the first third's


@claim
def deep_plain_early_layers_slow(learning: dict[str, dict[str, tuple[float, float]]]
                                 ) -> Verdict:
    """The notes' "early layers stop learning", in the BatchNorm plain CNNs: `layer_learning`
    of plain-20 and plain-56. The last third's relative gradient over the first third's: far
    above 1 in plain-56, near 1 in plain-20 (one change between them: the depth)."""
    slow = {}
    for name in ("plain-20", "plain-56"):
        first, _, last = by_thirds([g for _, g in learning[name].values()])
        slow[name] = last / max(first, TINY)
    return Verdict("with BatchNorm the deep plain net's early layers learn slowly: relative to "
                   "their weights, their gradient is far below the last layers'",
                   min(slow["plain-56"] / SLOWER, LEVEL / slow["plain-20"]),
                   f"the last third's ||∇W|| / ||W|| over the first third's: plain-56 "
                   f"{slow['plain-56']:.0f}x, plain-20 {slow['plain-20']:.1f}x (claim: plain-56 "
                   f"over {SLOWER}x, plain-20 under {LEVEL}x)")


REGIME_SETUPS = {"no BN, default init": dict(norm=False, init="default"),
                 "BatchNorm, default init": dict(init="default"), "BatchNorm, He init": {}}


def regime_nets(images: data.Dataset, seed: int = 0, depths: tuple[int, ...] = (20, 56, 110)
                ) -> dict[tuple, nn.Module]:
    """Plain and residual CIFAR nets of depth 20, 56 and 110 in the three `REGIME_SETUPS`, so
    that each comparison changes one thing: without normalization and with BatchNorm, both in
    PyTorch's default init (BatchNorm is the change), and BatchNorm in He init (the init is
    the change): {(set-up, depth, skip): net}."""
    return {(setup, depth, skip): cifar_resnet(depth, skip=skip, seed=seed,
                                               **images.net_options, **kw)
            for setup, kw in REGIME_SETUPS.items() for depth in depths
            for skip in (0.0, 1.0)}


def regime_table(images: data.Dataset, seed: int = 0) -> dict[tuple, dict[str, float]]:
    """The gradient profile at initialization of each of the `regime_nets`, on 16 images:
    {(set-up, depth, skip): profile}."""
    batch = images.x_train[:16], images.y_train[:16]
    return {key: gradient_profile(net, *batch) for key, net in regime_nets(images, seed).items()}


def regime_pairs(images: data.Dataset, seed: int = 0, depth: int = 56) -> dict[str, Comparison]:
    """What changes between the rows and columns of the regime table, at `depth`: the skip
    (a row's two columns), BatchNorm (rows 1 -> 2) and the init (rows 2 -> 3)."""
    inputs = dict(inputs="16 training images", measured="gradient profile at initialization")
    setup = {key: measured_setup(net, **inputs)
             for key, net in regime_nets(images, seed, (depth,)).items()}
    (no_bn, bn, he) = REGIME_SETUPS
    pairs = {f"plain-{depth} vs ResNet-{depth}, {row}": (setup[row, depth, 0.0],
                                                          setup[row, depth, 1.0])
             for row in REGIME_SETUPS}
    pairs |= {f"plain-{depth}, {no_bn} vs {bn}": (setup[no_bn, depth, 0.0], setup[bn, depth, 0.0]),
              f"plain-{depth}, {bn} vs {he}": (setup[bn, depth, 0.0], setup[he, depth, 0.0])}
    return {title: one_change(a, b, title) for title, (a, b) in pairs.items()}


@claim
def plain_vanishes_without_bn(table: dict[tuple, dict[str, float]]) -> Verdict:
    ratio = first_last_ratio(table["no BN, default init", 56, 0.0])
    return Verdict("plain CNN without normalization, at initialization: gradients vanish "
                   "towards the input",
                   VANISHING_BELOW / max(ratio, TINY),
                   f"plain-56 ratio {ratio:.1e} (claim: under {VANISHING_BELOW:g})")


@claim
def plain_explodes_with_bn(table: dict[tuple, dict[str, float]]) -> Verdict:
    ratio = first_last_ratio(table["BatchNorm, default init", 56, 0.0])   # only BN changed
    he = first_last_ratio(table["BatchNorm, He init", 56, 0.0])
    return Verdict("plain CNN with BatchNorm, at initialization: gradients explode towards "
                   "the input",
                   ratio / EXPLODING_ABOVE,
                   f"plain-56's ratio {ratio:.1e} with BatchNorm added to the default-init net "
                   f"(claim: over {EXPLODING_ABOVE:g}); beside it, not claimed: {he:.1e} with "
                   "He init as well, as ResNets are built")


@claim
def residual_stays_healthy(table: dict[tuple, dict[str, float]]) -> Verdict:
    ratios = [first_last_ratio(p) for (_, _, skip), p in table.items() if skip == 1.0]
    inside = min(min(r / VANISHING_BELOW, EXPLODING_ABOVE / r) for r in ratios)
    return Verdict("at initialization, residual nets are healthy at each depth measured (20, "
                   "56, 110), with or without BatchNorm",
                   inside, f"residual ratios {min(ratios):.2g} to {max(ratios):.2g} "
                   f"(healthy: {VANISHING_BELOW:g} to {EXPLODING_ABOVE:g})")
