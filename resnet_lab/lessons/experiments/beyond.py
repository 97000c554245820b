"""Lesson 5, beyond the textbook: the loss landscape's basin, deleting blocks, and
pre-activation at a high learning rate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...instruments import landscape
from ...nets import ensembles
from ...nets.blocks import blocks_of
from ...nets.models import cifar_resnet
from ...training import data, train
from ...training.callbacks import StopAtLoss
from ...training.evaluation import evaluate, precise_bn
from ...training.history import History
from ...training.recipes import with_lr
from ..settings import Settings, degradation_nets, degradation_runs
from ..verdicts import TINY, Verdict, claim


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


def matched_resnet(s: Settings, images: data.Dataset, target: float, seed: int = 0
                   ) -> tuple[nn.Module, History]:
    """The degradation experiment's ResNet-56 again (the same initial weights, batches and
    learning rate), stopped when its training loss (the mean of the last 10 steps) reaches
    `target`, the plain-56's final training loss: a ResNet-56 at matched training loss, so
    that two landscapes are compared at equal loss, not after equal steps."""
    net = degradation_nets(s, images, ("ResNet-56",), seed)["ResNet-56"]
    h = train.fit(net, images, name="ResNet-56", steps=s.steps, batch_size=s.batch_size,
                  recipe="constant", seed=seed, callbacks=[StopAtLoss(target)])
    if h.status != "early-stopped":
        print(f"ResNet-56 did not reach the training loss {target:.3f} in {s.steps} steps: "
              "the two nets are NOT at matched loss")
    return net, h


def equal_steps_plain(s: Settings, images: data.Dataset, steps: int, seed: int = 0
                      ) -> tuple[nn.Module, History]:
    """The control for the matched pair's second difference: the degradation experiment's
    plain-56 again (the same initial weights, batches and learning rate), trained for `steps`,
    the steps the `matched_resnet` took. Against that ResNet-56 only the skip changes; the
    training loss then differs (an outcome, not a setting)."""
    nets, runs = degradation_runs(replace(s, steps=steps), images, ("plain-56",), seed)
    return nets["plain-56"], runs["plain-56"]


def deletion_errors(nets: dict[str, nn.Module], images: data.Dataset
                    ) -> dict[str, tuple[float, np.ndarray]]:
    """Veit et al. 2016: each net's test error intact, and with each deletable block deleted
    in turn: {name: (intact error, errors after deletion)}. The intact net's BatchNorm
    statistics are re-estimated first (precise BN) and kept for the deletions: a deletion is
    a lesion at test time, as in Veit et al."""
    out = {}
    for name, net in nets.items():
        precise_bn(net, images.x_train)        # kept for the deletions below
        intact = evaluate(net, images.x_test, images.y_test)[1]
        errors = []
        for block in ensembles.deletable_blocks(net):
            with ensembles.without_block(net, block):
                errors.append(evaluate(net, images.x_test, images.y_test)[1])
        out[name] = intact, np.array(errors)
    return out


def deletion_damage(intact: float, errors: np.ndarray, chance: float) -> float:
    """How far deleting one block takes a net from its intact error towards chance: 0 = no
    harm, 1 = chance (median over the blocks)."""
    return float(np.median((errors - intact) / max(chance - intact, TINY)))


@claim
def ensemble_survives_deletion(results: dict[str, tuple[float, np.ndarray]],
                               chance: float) -> Verdict:
    damage = {n: deletion_damage(*r, chance) for n, r in results.items()}
    res, plain = damage["ResNet-20"], damage["plain-20"]
    parts = plain / (4 * max(res, TINY)), plain / 0.5
    return Verdict("deleting one block hurts the ResNet far less than the plain net, in the "
                   "median over blocks",
                   min(parts),
                   f"median damage (0 = none, 1 = chance): ResNet-20 {res:.2f}, plain-20 "
                   f"{plain:.2f} (claim: the ResNet's under a quarter of the plain net's, and "
                   "the plain net's over 0.5; the margin is the smaller of the two: "
                   f"{parts[0]:.3g} and {parts[1]:.3g})")


HIGH_LR = 0.5   # five times He et al.'s 0.1, with no warm-up


def preact_nets(s: Settings, images: data.Dataset, seed: int = 0, zero_head: bool = True
                ) -> dict[str, nn.Module]:
    """An original and a pre-activation ResNet-110 from one weights seed (their convs and fc
    are the same draws). `zero_head`: both fc layers start at 0, so every logit is 0 and both
    nets start at the same loss, ln(classes), whatever their features; without it the
    original starts higher, its head reading a sum that no BatchNorm has normalized."""
    kw = dict(width=s.width, seed=seed, **images.net_options)
    nets = {"ResNet-110": cifar_resnet(110, **kw),
            "pre-act ResNet-110": cifar_resnet(110, preact=True, **kw)}
    if zero_head:
        for net in nets.values():
            nn.init.zeros_(net.fc.weight)
            nn.init.zeros_(net.fc.bias)
    return nets


@torch.no_grad()
def preact_start(s: Settings, images: data.Dataset, seed: int = 0, zero_head: bool = True
                 ) -> dict[str, tuple[float, np.ndarray]]:
    """Where the two `preact_nets` start: on one training batch, in training mode (BatchNorm
    with the batch's statistics, as the first step sees it), the loss and the std of the
    signal after every residual block and at the head's input (after pooling):
    {name: (loss, stds)}. The original block's sum x + F(x) is never normalized on the way
    to the head; the pre-activation net ends with BN and ReLU before it."""
    x, y = images.x_train[:s.batch_size], images.y_train[:s.batch_size]
    out = {}
    for name, net in preact_nets(s, images, seed, zero_head).items():
        stds = []
        hooked = [*blocks_of(net).values(), net.avgpool]
        handles = [m.register_forward_hook(lambda _m, _i, o, stds=stds: stds.append(o.std().item()))
                   for m in hooked]
        try:
            loss = F.cross_entropy(net.train()(x), y).item()
        finally:
            for h in handles:
                h.remove()
        out[name] = loss, np.array(stds)
    return out


def preact_runs(s: Settings, images: data.Dataset, seed: int = 0) -> dict[str, History]:
    """The `preact_nets` (both heads zeroed: the same starting loss) on the same batches,
    for half the lesson's steps at a constant, high learning rate (`HIGH_LR`, no warm-up):
    where a net that is hard to optimize does not get started."""
    deep = preact_nets(s, images, seed)
    return train.compare(deep, images, steps=s.steps // 2, batch_size=s.batch_size,
                         recipe=with_lr("constant", HIGH_LR), grad_every=0, seed=seed)


@claim
def preact_trains_better(histories: dict[str, History]) -> Verdict:
    original, preact = (histories[n] for n in ("ResNet-110", "pre-act ResNet-110"))
    end = original.final_train_loss(), preact.final_train_loss()
    return Verdict(f"at lr {HIGH_LR:g} without warm-up, after {len(original.train_loss)} steps, "
                   "the pre-activation ResNet-110 (its block order and final BN) has a lower "
                   "training loss than the original",
                   end[0] / (1.5 * end[1]),
                   f"final train loss: pre-act {end[1]:.3f}, original {end[0]:.3f}, from first "
                   f"losses {preact.train_loss[0]:.2f} and {original.train_loss[0]:.2f} "
                   "(claim: 1.5x lower)")
