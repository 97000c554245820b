"""Lesson 3, ResNet architectures: the bottleneck's savings, ResNet-50 against torchvision,
and basic vs bottleneck blocks at an equal budget."""

from __future__ import annotations

import math

from torch import nn

from ...instruments.cost import Summary, complexity
from ...nets.blocks import BasicBlock, Bottleneck
from ...nets.models import cifar_resnet
from ...nets.paper import TORCHVISION_RESNET50_GMACS, TORCHVISION_RESNET50_PARAMS
from ...training import data, train
from ...training.history import History
from ..settings import Settings
from ..verdicts import TINY, Verdict, claim


@claim
def bottleneck_saves(shape: tuple[int, ...] = (1, 256, 56, 56)) -> Verdict:
    """A basic block at 256 channels against the notes' 256 -> 64 -> 64 -> 256 bottleneck."""
    basic_params, basic_macs = complexity(BasicBlock(256, 256), shape)
    neck_params, neck_macs = complexity(Bottleneck(256, 64), shape)
    ratios = basic_params / neck_params, basic_macs / neck_macs
    return Verdict("the bottleneck reduces parameters and computation against a basic block "
                   "kept at 256 channels", min(ratios) / 10,
                   f"{ratios[0]:.0f}x fewer parameters, {ratios[1]:.0f}x fewer MACs at 256 "
                   "channels (claim: 10x, the lab's threshold)")


@claim
def resnet50_matches(table: Summary, blocks: list[int]) -> Verdict:
    """An exact check (margin inf or 0): torchvision's ResNet-50 has 25,557,032 parameters
    and 4.1 GMACs at 224x224 (`paper`), in stages of [3, 4, 6, 3] bottlenecks."""
    params, gmacs = TORCHVISION_RESNET50_PARAMS, TORCHVISION_RESNET50_GMACS
    exact = (table.params == params and round(table.macs / 1e9, 1) == round(gmacs, 1)
             and blocks == [3, 4, 6, 3])
    return Verdict("ResNet-50 matches torchvision's parameter count, GMACs and stages",
                   math.inf if exact else 0.0,
                   f"{table.params:,} parameters (torchvision: {params:,}), "
                   f"{table.macs / 1e9:.2f} GMACs ({gmacs:.1f}), blocks {blocks} ([3, 4, 6, 3])")


def block_type_nets(s: Settings, images: data.Dataset, seed: int = 0) -> dict[str, nn.Module]:
    """A basic-block ResNet-20 and a bottleneck ResNet-29 with about the same parameters and
    MACs, from one weights seed."""
    kw = dict(width=s.width, seed=seed, **images.net_options)
    return {"basic, 20 layers": cifar_resnet(20, **kw),
            "bottleneck, 29 layers": cifar_resnet(29, block="bottleneck", **kw)}



def block_type_runs(s: Settings, images: data.Dataset, seed: int = 0
                    ) -> tuple[dict[str, nn.Module], dict[str, History]]:
    """The `block_type_nets`, trained side by side for the lesson's steps on the same batches."""
    nets = block_type_nets(s, images, seed)
    return nets, train.compare(nets, images, steps=s.steps, batch_size=s.batch_size,
                               recipe="quick", seed=seed)


SIMILAR = 0.05  # "about as well": final training losses within 0.05 x ln(10), the starting loss


@claim
def block_types_match(histories: dict[str, History]) -> Verdict:
    losses = {n: h.final_train_loss() for n, h in histories.items()}
    gap = max(losses.values()) - min(losses.values())
    allowed = SIMILAR * math.log(10)
    return Verdict("at (almost) the same parameter count the two designs, basic blocks at 20 "
                   "layers and bottlenecks at 29, train about as well",
                   allowed / max(gap, TINY),
                   ", ".join(f"{n}: final training loss {v:.2f}" for n, v in losses.items())
                   + f"; gap {gap:.2f} (claim: within {allowed:.2f}, a twentieth of "
                   "ln 10, the loss of a uniform guess)")
