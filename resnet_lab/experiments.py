"""The lessons' key experiments, one function per claim, and the verdict of each.

An experiment function runs what a lesson shows (seeded: `seed` fixes the weights and the
batches) and returns what the lesson plots; the claim function beside it turns that into a
`lesson.Verdict` whose margin states the paper's claim, measured. The lessons call these,
and `benchmarks/bench_verdicts.py` calls the very same functions over seeds, datasets and CPU
kernels, so a verdict that shows in a lesson shows everywhere, with a margin.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data, ensembles, landscape, train
from .blocks import BasicBlock, Bottleneck
from .cardinality import AggregatedTransform
from .hooks import (
    EXPLODING_ABOVE,
    VANISHING_BELOW,
    ActivationStats,
    GradientNorms,
    UpdateRatios,
    first_last_ratio,
    gradient_profile,
    relative_weight_change,
    weight_snapshot,
)
from .lesson import Settings, Verdict
from .models import (
    ImageNetConfig,
    ResNet,
    Summary,
    build_seeded,
    cifar_resnet,
    complexity,
    deep_mlp,
    initialize,
)
from .step import Step

TINY = 1e-30        # stands in for an exact zero in a ratio: the margin is then huge, not inf

# ---------------------------------------------------------------------------------------------
# Lesson 1: vanishing gradients


def mlp_profiles(seed: int = 0) -> dict[str, dict[str, float]]:
    """Gradient profiles of 20-layer plain MLPs (sigmoid, tanh, ReLU) at initialization, one
    batch of 256 random 64-dimensional inputs."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 64, generator=g), torch.randint(0, 10, (256,), generator=g)
    return {f"plain {act}": gradient_profile(deep_mlp(20, activation=act, seed=seed), x, y)
            for act in ("sigmoid", "tanh", "relu")}


def sigmoid_vanishes(profiles: dict[str, dict[str, float]]) -> Verdict:
    ratio = first_last_ratio(profiles["plain sigmoid"])
    return Verdict("vanishing gradient in a deep sigmoid MLP",
                   VANISHING_BELOW / max(ratio, TINY),
                   f"first-layer gradient = {ratio:.1e} x last layer's "
                   f"(vanishing below {VANISHING_BELOW:g})")


@dataclass
class MLPTraining:
    """What lesson 1 watches while the deep sigmoid MLP trains."""

    history: train.History
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
    sgd = train.Recipe("plain SGD", lr=0.1, momentum=0.9, weight_decay=0.0, schedule="constant")
    with ActivationStats(mlp, WATCHED_SIGMOIDS, bins=40, hist_range=(0.0, 1.0)) as acts, \
            UpdateRatios(mlp) as updates:
        history = train.fit(mlp, images, steps=steps, batch_size=128, recipe=sgd,
                            name="sigmoid MLP", seed=seed)
    return MLPTraining(history, relative_weight_change(mlp, start), acts, updates)


def early_layers_freeze(moved: dict[str, float]) -> Verdict:
    first, last = "blocks.0.fc", list(moved)[-1]
    return Verdict("early layers stop learning",
                   moved[last] / (100 * max(moved[first], TINY)),
                   f"{first} moved {moved[first]:.1e}, {last} {moved[last]:.1e} "
                   "(claim: under 1/100 of it)")


WORSE = 1.1     # "trains worse": a final training loss (or error) 10% above the other net's


def deeper_plain_trains_worse(runs: dict[str, train.History]) -> Verdict:
    """He et al. Fig. 1: plain-56 ends with a higher training loss than plain-20, and a higher
    test error too (so it is not overfitting)."""
    p20, p56 = runs["plain-20"], runs["plain-56"]
    loss20, loss56 = p20.final_train_loss(), p56.final_train_loss()
    err20, err56 = p20.test_error[-1], p56.test_error[-1]
    return Verdict("deeper plain net has higher TRAINING loss (not overfitting)",
                   min(loss56 / loss20, err56 / max(err20, TINY)) / WORSE,
                   f"plain-56 train loss {loss56:.2f} vs plain-20 {loss20:.2f}, test error "
                   f"{100 * err56:.0f}% vs {100 * err20:.0f}% (claim: both {WORSE:g}x)")


def skips_remove_degradation(runs: dict[str, train.History]) -> Verdict:
    res, plain = runs["ResNet-56"].final_train_loss(), runs["plain-56"].final_train_loss()
    return Verdict("skip connections remove it", plain / res / WORSE,
                   f"ResNet-56 {res:.2f} vs plain-56 {plain:.2f} (claim: plain {WORSE:g}x)")


def regime_table(images: data.Dataset, seed: int = 0) -> dict[tuple, dict[str, float]]:
    """Gradient profiles at initialization of plain and residual CIFAR nets of depth 20, 56
    and 110, without normalization (PyTorch's default init) and with BatchNorm (He init),
    on 16 images: {(set-up, depth, skip): profile}."""
    batch = images.x_train[:16], images.y_train[:16]
    setups = {"no BN, default init": dict(norm=False, init="default"), "BatchNorm, He init": {}}
    return {(setup, depth, skip): gradient_profile(
                cifar_resnet(depth, skip=skip, in_channels=images.shape[0], seed=seed, **kw),
                *batch)
            for setup, kw in setups.items() for depth in (20, 56, 110) for skip in (0.0, 1.0)}


def plain_vanishes_without_bn(table: dict[tuple, dict[str, float]]) -> Verdict:
    ratio = first_last_ratio(table["no BN, default init", 56, 0.0])
    return Verdict("plain CNN without normalization: gradients vanish towards the input",
                   VANISHING_BELOW / max(ratio, TINY), f"plain-56 ratio {ratio:.1e}")


def plain_explodes_with_bn(table: dict[tuple, dict[str, float]]) -> Verdict:
    ratio = first_last_ratio(table["BatchNorm, He init", 56, 0.0])
    return Verdict("plain CNN with BatchNorm: gradients explode towards the input",
                   ratio / EXPLODING_ABOVE, f"plain-56 ratio {ratio:.1e}")


def residual_stays_healthy(table: dict[tuple, dict[str, float]]) -> Verdict:
    ratios = [first_last_ratio(p) for (_, _, skip), p in table.items() if skip == 1.0]
    inside = min(min(r / VANISHING_BELOW, EXPLODING_ABOVE / r) for r in ratios)
    return Verdict("residual nets stay healthy at every depth, with or without BatchNorm",
                   inside, f"residual ratios {min(ratios):.2g} to {max(ratios):.2g} "
                   f"(healthy: {VANISHING_BELOW:g} to {EXPLODING_ABOVE:g})")


# ---------------------------------------------------------------------------------------------
# Lesson 2: residual learning


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
    """He et al. Fig. 7: the std of every 3x3 layer's response (after BN), on 500 test images,
    for the plain-56 and ResNet-56 of the degradation experiment."""
    stds = {}
    for name in ("plain-56", "ResNet-56"):
        net = nets[name]
        responses = [n for n, _ in net.named_modules()
                     if n.startswith("layer") and n.endswith(("bn1", "bn2"))]
        with ActivationStats(net, responses, train_only=False) as acts:
            train.evaluate(net, images.x_test[:500], images.y_test[:500])
        stds[name] = acts.stds()[0]
    return stds


def responses_are_smaller(stds: dict[str, np.ndarray]) -> Verdict:
    res, plain = stds["ResNet-56"].mean(), stds["plain-56"].mean()
    return Verdict("the ResNet's layer responses are smaller than the plain net's", plain / res,
                   f"mean std {res:.2f} vs {plain:.2f}")


# ---------------------------------------------------------------------------------------------
# Lesson 3: architectures


def bottleneck_saves(shape: tuple[int, ...] = (1, 256, 56, 56)) -> Verdict:
    """A basic block at 256 channels against the notes' 256 -> 64 -> 64 -> 256 bottleneck."""
    basic_params, basic_macs = complexity(BasicBlock(256, 256), shape)
    neck_params, neck_macs = complexity(Bottleneck(256, 64), shape)
    ratios = basic_params / neck_params, basic_macs / neck_macs
    return Verdict("the bottleneck reduces parameters and computation", min(ratios) / 10,
                   f"{ratios[0]:.0f}x fewer parameters, {ratios[1]:.0f}x fewer MACs at 256 "
                   "channels (claim: 10x)")


def resnet50_matches(table: Summary, blocks: list[int]) -> Verdict:
    """An exact check (margin inf or 0): torchvision's ResNet-50 has 25,557,032 parameters
    and 4.1 GMACs at 224x224, in stages of [3, 4, 6, 3] bottlenecks."""
    exact = (table.params == 25_557_032 and round(table.macs / 1e9, 1) == 4.1
             and blocks == [3, 4, 6, 3])
    return Verdict("ResNet-50 matches torchvision: 25.6M parameters, 4.1 GMACs",
                   math.inf if exact else 0.0,
                   f"{table.params:,} parameters, {table.macs / 1e9:.2f} GMACs, blocks {blocks}")


def block_type_runs(s: Settings, images: data.Dataset, seed: int = 0
                    ) -> tuple[dict[str, nn.Module], dict[str, train.History]]:
    """A basic-block ResNet-20 and a bottleneck ResNet-29 with about the same parameters and
    MACs, from one seed, trained side by side for half the lesson's steps."""
    kw = dict(width=s.width, in_channels=images.shape[0], num_classes=len(images.classes),
              seed=seed)
    nets = {"basic, 20 layers": cifar_resnet(20, **kw),
            "bottleneck, 29 layers": cifar_resnet(29, block="bottleneck", **kw)}
    return nets, train.compare(nets, images, steps=s.steps // 2, batch_size=s.batch_size,
                               recipe="quick", seed=seed)


SIMILAR = 0.1   # "about as well": final training losses within 0.1 x ln(10), the starting loss


def block_types_match(runs: dict[str, train.History]) -> Verdict:
    losses = {n: h.final_train_loss() for n, h in runs.items()}
    gap = max(losses.values()) - min(losses.values())
    allowed = SIMILAR * math.log(10)
    return Verdict("at an equal budget the two block types train about as well",
                   allowed / max(gap, TINY),
                   ", ".join(f"{n}: final loss {v:.2f}" for n, v in losses.items())
                   + f" (claim: within {allowed:.2f}, a tenth of the starting loss ln 10)")


# ---------------------------------------------------------------------------------------------
# Lesson 4: ResNeXt


def three_forms(seed: int = 0) -> tuple[AggregatedTransform, torch.Tensor,
                                        dict[str, torch.Tensor]]:
    """One ResNeXt transformation (32 paths of 4 channels) computed three ways on one batch."""
    block = build_seeded(lambda: AggregatedTransform(256, cardinality=32, width=4),
                         lambda m, g: initialize(m, generator=g), seed)
    x = torch.randn(4, 256, 14, 14, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        forms = {"(a) 32 paths, summed": block.paths(x), "(b) concatenate": block.concat(x),
                 "(c) grouped conv": block.grouped(x)}
    return block, x, forms


def forms_agree(forms: dict[str, torch.Tensor]) -> Verdict:
    reference = forms["(c) grouped conv"]
    worst = max((out - reference).abs().max().item() for out in forms.values())
    return Verdict("the three forms compute the same function", 1e-4 / max(worst, TINY),
                   f"largest difference {worst:.0e} (float32 rounding; claim: under 1e-4)")


def median_ms(fn, repeats: int = 7) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call, without autograd."""
    times = []
    with torch.no_grad():
        fn()
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def time_forms(block: AggregatedTransform, x: torch.Tensor) -> dict[str, float]:
    return {"(a) 32 paths, summed": median_ms(lambda: block.paths(x)),
            "(b) concatenate": median_ms(lambda: block.concat(x)),
            "(c) grouped conv": median_ms(lambda: block.grouped(x))}


def grouped_is_faster(timings: dict[str, float]) -> Verdict:
    speedup = timings["(a) 32 paths, summed"] / timings["(c) grouped conv"]
    return Verdict("the grouped convolution is faster than the loop of paths", speedup / 1.5,
                   f"{speedup:.1f}x faster (claim: 1.5x)")


XIE_TABLE_3 = {(1, 64): 23.9, (2, 40): 23.0, (4, 24): 22.6, (8, 14): 22.3, (32, 4): 22.2}


def budget_variants() -> dict[tuple[int, int], tuple[int, int]]:
    """(C, d) -> (parameters, MACs at 224x224) of Xie et al.'s Table 2 variants of ResNet-50,
    built on the meta device (no memory, no init: only the shapes count)."""
    sizes = {}
    for c, d in XIE_TABLE_3:
        with torch.device("meta"):
            model = ResNet(ImageNetConfig("resnet50", groups=c, width_per_group=d))
        sizes[c, d] = complexity(model, (1, 3, 224, 224))
    return sizes


def same_budget(sizes: dict[tuple[int, int], tuple[int, int]]) -> Verdict:
    params = [p for p, _ in sizes.values()]
    spread = max(params) / min(params) - 1
    return Verdict("more paths at the same parameter budget", 0.05 / spread,
                   f"all five variants within {100 * spread:.1f}% of each other's parameters "
                   "(claim: 5%)")


# ---------------------------------------------------------------------------------------------
# Lesson 5: beyond the textbook


def landscape_slices(nets: dict[str, nn.Module], images: data.Dataset,
                     alphas: np.ndarray) -> dict[str, np.ndarray]:
    """1-D slices of each net's loss along one filter-normalized random direction (Li et al.
    2018), on 500 test images."""
    x, y = images.x_test[:500], images.y_test[:500]
    return {name: landscape.loss_surface(net, x, y,
                                         [landscape.filter_normalized_direction(net, 0)], alphas)
            for name, net in nets.items()}


def basin_rises(nets: dict[str, nn.Module], images: data.Dataset, directions: int = 4,
                alpha: float = 0.5) -> dict[str, float]:
    """How far each net's loss rises a filter-normalized step `alpha` away from its trained
    weights: the mean over both signs and `directions` random directions (one direction alone
    is noisy), on 500 test images."""
    x, y = images.x_test[:500], images.y_test[:500]
    rises = {}
    for name, net in nets.items():
        slices = [landscape.loss_surface(net, x, y, [landscape.filter_normalized_direction(
                      net, d)], [-alpha, 0.0, alpha]) for d in range(directions)]
        rises[name] = float(np.mean([(s[0] + s[2]) / 2 - s[1] for s in slices]))
    return rises


def wider_basin(rises: dict[str, float]) -> Verdict:
    res, plain = rises["ResNet-56"], rises["plain-56"]
    return Verdict("the ResNet sits in a wider basin", plain / max(res, TINY),
                   f"mean loss rise at |α| = 0.5 over 4 directions: ResNet-56 {res:.2f}, "
                   f"plain-56 {plain:.2f} (claim: the plain net's is larger)")


def deletion_errors(nets: dict[str, nn.Module], images: data.Dataset
                    ) -> dict[str, tuple[float, np.ndarray]]:
    """Veit et al. 2016: each net's test error intact, and with each deletable block deleted
    in turn: {name: (intact error, errors after deletion)}."""
    out = {}
    for name, net in nets.items():
        intact = train.evaluate(net, images.x_test, images.y_test)[1]
        errors = []
        for block in ensembles.deletable_blocks(net):
            with ensembles.without_block(net, block):
                errors.append(train.evaluate(net, images.x_test, images.y_test)[1])
        out[name] = intact, np.array(errors)
    return out


def deletion_damage(intact: float, errors: np.ndarray, chance: float) -> float:
    """How far deleting one block takes a net from its intact error towards chance: 0 = no
    harm, 1 = chance (median over the blocks)."""
    return float(np.median((errors - intact) / max(chance - intact, TINY)))


def ensemble_survives_deletion(results: dict[str, tuple[float, np.ndarray]],
                               chance: float) -> Verdict:
    damage = {n: deletion_damage(*r, chance) for n, r in results.items()}
    res, plain = damage["ResNet-20"], damage["plain-20"]
    return Verdict("deleting one block hurts the ResNet far less than the plain net",
                   min(plain / (4 * max(res, TINY)), plain / 0.5),
                   f"median damage (0 = none, 1 = chance): ResNet-20 {res:.2f}, plain-20 "
                   f"{plain:.2f} (claim: under a quarter of the plain net's, which loses "
                   "over half the way to chance)")


HIGH_LR = 0.5   # five times He et al.'s 0.1, with no warm-up


def preact_runs(s: Settings, images: data.Dataset, seed: int = 0) -> dict[str, train.History]:
    """An original and a pre-activation ResNet-110 from one weights seed, on the same batches,
    for half the lesson's steps at a constant, high learning rate (`HIGH_LR`, no warm-up):
    where a net that is hard to optimize does not get started."""
    kw = dict(width=s.width, in_channels=images.shape[0], num_classes=len(images.classes),
              seed=seed)
    deep = {"ResNet-110": cifar_resnet(110, **kw),
            "pre-act ResNet-110": cifar_resnet(110, preact=True, **kw)}
    return train.compare(deep, images, steps=s.steps // 2, batch_size=s.batch_size,
                         recipe=train.with_lr("constant", HIGH_LR), grad_every=0, seed=seed)


def preact_trains_better(runs: dict[str, train.History]) -> Verdict:
    original, preact = (runs[n].final_train_loss() for n in ("ResNet-110", "pre-act ResNet-110"))
    return Verdict(f"at lr {HIGH_LR:g} without warm-up, pre-activation trains the 110-layer net "
                   "and the original block does not", original / (1.5 * preact),
                   f"final train loss: pre-act {preact:.3f}, original {original:.3f} "
                   "(claim: 1.5x lower)")
