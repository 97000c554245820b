"""Drawings of a network made from the model object itself, so they cannot disagree with it:
a block's steps, the net stage by stage (its blocks coloured on the strip's scale, strip.py),
ResNeXt's three forms, a grouped convolution as a weight grid, the function-class argument.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.cm
import matplotlib.colors
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
from torch import nn

from ..instruments.cost import zeros_pass
from ..nets.blocks import PadShortcut, ResidualBlock, blocks_of, stage_of
from ..nets.cardinality import AggregatedTransform
from ..nets.models import ResNet
from ..nets.paper import SZEGEDY2015_INCEPTION_3A
from .strip import COLORSCALE, LOG_RANGE

# ---------------------------------------------------------------------------------------------
# Block diagrams (matplotlib), read from a block's own modules


def _conv_label(conv: nn.Conv2d) -> str:
    k = conv.kernel_size[0]
    text = f"{k}×{k} conv {conv.in_channels}→{conv.out_channels}"
    if conv.stride[0] > 1:
        text += f", /{conv.stride[0]}"
    if conv.groups > 1:
        text += f", {conv.groups} groups"
    return text


def _norm_label(module: nn.Module) -> list[str]:
    return [] if isinstance(module, nn.Identity) else [f"BN {module.num_features}"]


def _shortcut_label(block: ResidualBlock) -> str:
    if block.downsample is None:
        return "identity x"
    if isinstance(block.downsample, PadShortcut):
        return f"x, /{block.downsample.stride}, +{block.downsample.extra_channels} zero channels"
    conv = block.downsample[0]
    return f"1×1 conv {conv.in_channels}→{conv.out_channels}, /{conv.stride[0]} + BN"


def block_steps(block: ResidualBlock) -> list[str]:
    """The layers of a block's residual branch F, in order, then "+" and what follows it:
    ReLU after the addition in the original block, nothing in a pre-activation block."""
    convs = [m for name, m in block.named_children() if name.startswith("conv")]
    norms = [getattr(block, f"bn{i + 1}") for i in range(len(convs))]
    steps: list[str] = []
    for i, (conv, norm) in enumerate(zip(convs, norms, strict=True)):
        if block.preact:                         # He et al. 2016: BN, ReLU, then the conv
            steps += _norm_label(norm) + ["ReLU", _conv_label(conv)]
        else:                                    # He et al. 2015: conv, BN, ReLU (not the last)
            steps += [_conv_label(conv)] + _norm_label(norm)
            if i < len(convs) - 1:
                steps.append("ReLU")
    steps.append("+")
    if not block.preact:
        steps.append("ReLU")
    return steps


def draw_block(block: ResidualBlock, ax: plt.Axes | None = None, title: str = "") -> plt.Figure:
    """A block as a flow chart, input at the top: the residual branch F on the left, the
    shortcut on the right (dashed and marked when its skip gate is 0), the addition, and
    where the ReLU sits relative to it."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(4.4, 5.2))
    ax = ax or fig.add_subplot()
    steps = block_steps(block)
    n = len(steps)
    y = lambda i: n - i                                      # top to bottom
    ax.text(0, n + 1, "x", ha="center", va="center", fontsize=11, fontweight="bold")
    for i, step in enumerate(steps):
        kind = "add" if step == "+" else "relu" if step == "ReLU" else \
            "norm" if step.startswith("BN") else "conv"
        style = {"conv": ("#dbe9f6", "round,pad=0.3"), "norm": ("#fff2cc", "round,pad=0.25"),
                 "relu": ("#e2f0d9", "round,pad=0.25"), "add": ("#ffffff", "circle,pad=0.25")}
        face, box = style[kind]
        ax.annotate("", (0, y(i) + 0.3), (0, y(i) + 0.7),
                    arrowprops=dict(arrowstyle="-|>", color="#555"))
        ax.text(0, y(i), "⊕" if kind == "add" else step, ha="center", va="center",
                fontsize=12 if kind == "add" else 8.5,
                bbox=dict(boxstyle=box, facecolor=face, edgecolor="#555"))
    add = y(steps.index("+"))
    ax.text(-1.5, (n + add) / 2, "F(x)", fontsize=10, ha="center", va="center", rotation=90,
            color="#555")
    ax.text(0, 0.45, "y", ha="center", va="center", fontsize=11, fontweight="bold")
    gated = block.skip == 0
    ax.plot([0.15, 1.6, 1.6, 0.35], [n + 1, n + 1, add, add], color="#c00" if gated else "#1f77b4",
            ls="--" if gated else "-", lw=1.6)
    label = _shortcut_label(block) + (f"\nskip gate {block.skip:g}" if block.skip != 1 else "")
    ax.text(1.7, (n + 1 + add) / 2, ("✂ cut: " if gated else "shortcut: ") + label,
            fontsize=8, va="center", ha="left", color="#c00" if gated else "#1f77b4", wrap=True)
    ax.set(xlim=(-2.2, 4.2), ylim=(0.3, n + 1.6), title=title or type(block).__name__)
    ax.axis("off")
    return fig


# ---------------------------------------------------------------------------------------------
# A whole network, stage by stage


@dataclass(frozen=True)
class Stage:
    """One box of a network diagram: what it is and the picture it hands on."""

    name: str
    text: str
    channels: int
    size: int                # the side of the picture after it (1 after pooling)


def network_stages(model: ResNet, input_size: Sequence[int]) -> list[Stage]:
    """The stem, each stage and the head of a ResNet, with the shape after each, measured by
    running zeros of `input_size` (batch included) through it in eval mode."""
    shapes = zeros_pass(model, input_size, ["conv1", "maxpool", "avgpool", "fc", *[
        f"layer{i}" for i in range(1, model.num_stages + 1)]])
    conv = model.conv1
    k = conv.kernel_size[0]
    stages = [Stage("input", f"image {input_size[1]}×{input_size[2]}×{input_size[3]}",
                    input_size[1], input_size[2]),
              Stage("conv1", f"{k}×{k} conv, {conv.out_channels}"
                    + (f", /{conv.stride[0]}" if conv.stride[0] > 1 else ""),
                    shapes["conv1"][1], shapes["conv1"][2])]
    if isinstance(model.maxpool, nn.MaxPool2d):
        stages.append(Stage("maxpool", "3×3 max pool, /2", *shapes["maxpool"][1:3]))
    for i in range(1, model.num_stages + 1):
        blocks = getattr(model, f"layer{i}")
        kind = type(blocks[0]).__name__
        width = f"\n3×3 width {blocks[0].conv2.out_channels}" if kind == "Bottleneck" else ""
        stages.append(Stage(f"layer{i}", f"stage {i}: {len(blocks)} × {kind}{width}",
                            *shapes[f"layer{i}"][1:3]))
    stages.append(Stage("avgpool", "global average pool", shapes["avgpool"][1], 1))
    stages.append(Stage("fc", f"fc {model.fc.out_features}", model.fc.out_features, 1))
    return stages


def draw_stage_blocks(ax: plt.Axes, x: float, blocks: Mapping[str, ResidualBlock],
                      colours: Mapping[str, str], deleted: Collection[str]) -> None:
    """One stage's blocks as small squares in its box at `x`: dashed where the skip is cut,
    filled with `colours`; a `deleted` block grey and crossed out in red."""
    side = min(0.14, 0.76 / len(blocks))
    for j, (name, block) in enumerate(blocks.items()):
        ax.add_patch(matplotlib.patches.Rectangle(
            (x - 0.38 + j * side, 0.55), side * 0.85, 0.3,
            facecolor="#d9d9d9" if name in deleted else colours.get(name, "#ffffff"),
            edgecolor="#333", ls="--" if block.skip == 0 else "-", lw=0.8))
        if name in deleted:
            ax.text(x - 0.38 + (j + 0.425) * side, 0.7, "✕", ha="center", va="center",
                    color="#c62828", fontsize=18, fontweight="bold")


def draw_network(model: ResNet, input_size: Sequence[int], *, title: str = "",
                 block_colours: Mapping[str, str] | None = None,
                 deleted: Collection[str] = ()) -> plt.Figure:
    """A ResNet left to right: stem, stages (one small square per block, dashed where the
    block's skip is cut), pooling and fc; under each box the picture it hands on, channels ×
    height × width. `block_colours` (from `norm_colour`) colours the blocks by gradient norm,
    and a colour bar shows that scale; the `deleted` blocks (the lesion view's) are crossed
    out in red."""
    stages = network_stages(model, input_size)
    blocks = blocks_of(model)
    fig, ax = plt.subplots(figsize=(1.9 * len(stages) + (1.6 if block_colours else 0), 2.6))
    for i, stage in enumerate(stages):
        wide = stage.name.startswith("layer")
        ax.add_patch(matplotlib.patches.FancyBboxPatch(
            (i - 0.42, 0.2), 0.84, 1.3, boxstyle="round,pad=0.04",
            facecolor="#dbe9f6" if wide else "#f2f2f2", edgecolor="#555"))
        ax.text(i, 1.28, stage.text, ha="center", va="center", fontsize=8, wrap=True)
        if wide:
            draw_stage_blocks(ax, i, {n: b for n, b in blocks.items() if stage_of(n) == stage.name},
                              block_colours or {}, deleted)
        shape = f"{stage.channels}" if stage.size == 1 else \
            f"{stage.channels}×{stage.size}×{stage.size}"
        ax.text(i, 0.02, shape, ha="center", va="top", fontsize=8, color="#1f4e79")
        if i:
            ax.annotate("", (i - 0.44, 0.85), (i - 0.56, 0.85),
                        arrowprops=dict(arrowstyle="-|>", color="#555"))
    ax.set(xlim=(-0.6, len(stages) - 0.4), ylim=(-0.35, 1.6), title=title)
    ax.axis("off")
    if block_colours:
        scale = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(*LOG_RANGE),
                                             COLORSCALE.lower())
        fig.colorbar(scale, ax=ax, fraction=0.04, pad=0.01,
                     label="log10 gradient norm\n(below/above: the end colours)")
    else:
        fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# ResNeXt's three equivalent forms (Xie et al. 2017, Fig. 3), read from one transform


def _column(ax: plt.Axes, x: float, labels: Sequence[str], top: float = 3.0,
            face: str = "#dbe9f6") -> None:
    for j, label in enumerate(labels):
        ax.text(x, top - j, label, ha="center", va="center", fontsize=7.5,
                bbox=dict(boxstyle="round,pad=0.3", facecolor=face, edgecolor="#555"))
        if j:
            ax.annotate("", (x, top - j + 0.22), (x, top - j + 0.78),
                        arrowprops=dict(arrowstyle="-|>", color="#555", lw=0.8))


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", end, start, arrowprops=dict(arrowstyle="-|>", color="#555", lw=0.8))


FORM_TOP, FORM_ADD = 4.7, -1.7      # where x enters and where "+ x" closes the block


def _input_and_shortcut(ax: plt.Axes, channels: int, last: float | None) -> None:
    """x at the top, the shortcut down the right side, and the addition at the bottom that
    takes the transform's output (from its last box at height `last`; None: drawn already)
    and the shortcut."""
    ax.text(1.65, FORM_TOP, f"x  ({channels} channels)", ha="center", va="center",
            fontsize=8.5, fontweight="bold")
    ax.text(1.65, FORM_ADD, "⊕", ha="center", va="center", fontsize=13,
            bbox=dict(boxstyle="circle,pad=0.15", facecolor="#ffffff", edgecolor="#555"))
    ax.text(1.65, FORM_ADD - 0.6, "y = relu(x + T(x))", ha="center", va="center", fontsize=8)
    if last is not None:
        _arrow(ax, (1.65, last - 0.25), (1.65, FORM_ADD + 0.3))
    ax.plot([2.6, 4.2, 4.2, 1.9], [FORM_TOP, FORM_TOP, FORM_ADD, FORM_ADD], color="#1f77b4",
            lw=1.4)
    ax.text(4.3, (FORM_TOP + FORM_ADD) / 2, "shortcut x", rotation=90, color="#1f77b4",
            fontsize=8, va="center")


PATH_X = (0, 1.3, 3.3)               # where paths 1, 2 and C stand in forms (a) and (b)


def _path_name(k: int, c: int) -> str:
    return f"path {c}" if k == len(PATH_X) - 1 else f"path {k + 1}"


def _form_a(ax: plt.Axes, transform: AggregatedTransform) -> None:
    """Form (a): the input fans out to C identical paths 1x1 -> 3x3 -> 1x1, their outputs
    summed with the shortcut."""
    c, d, channels = transform.cardinality, transform.width, transform.reduce.in_channels
    for k, x in enumerate(PATH_X):
        _column(ax, x, [_path_name(k, c), f"1×1 {channels}→{d}", f"3×3 {d}→{d}",
                        f"1×1 {d}→{channels}"], top=3.6)
        _arrow(ax, (1.65, FORM_TOP - 0.25), (x, 3.85))               # x fans out to every path
        _arrow(ax, (x, 0.35), (1.65, FORM_ADD + 0.3))                # all into the sum
    ax.text(2.3, 2.1, "…", fontsize=16, ha="center")
    _input_and_shortcut(ax, channels, None)


def _frame(ax: plt.Axes, title: str) -> None:
    ax.set(xlim=(-0.8, 4.6), ylim=(FORM_ADD - 0.9, FORM_TOP + 0.4), title=title)
    ax.axis("off")


def draw_resnext_forms(transform: AggregatedTransform) -> plt.Figure:
    """(a) C paths summed, (b) C paths concatenated before one 1x1, (c) one grouped conv,
    each with the shared input fanning out, the join, and the shortcut to the final "+"; the
    channel numbers come from `transform`'s own convolutions."""
    c, d = transform.cardinality, transform.width
    channels, inner = transform.reduce.in_channels, transform.reduce.out_channels
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.8))
    _form_a(axes[0], transform)
    for k, x in enumerate(PATH_X):
        _column(axes[1], x, [_path_name(k, c), f"1×1 {channels}→{d}", f"3×3 {d}→{d}"], top=3.6)
        _arrow(axes[1], (1.65, FORM_TOP - 0.25), (x, 3.85))
        _arrow(axes[1], (x, 1.35), (1.65, 0.85))                     # (b): into the concat
    axes[1].text(2.3, 2.1, "…", fontsize=16, ha="center")
    _column(axes[1], 1.65, [f"concatenate → {inner}", f"1×1 {inner}→{channels}"], top=0.6,
            face="#fff2cc")
    _column(axes[2], 1.65, [f"1×1 {channels}→{inner}",
                            f"3×3 {inner}→{inner}, groups = {c}", f"1×1 {inner}→{channels}"],
            top=3.6)
    _arrow(axes[2], (1.65, FORM_TOP - 0.25), (1.65, 3.85))
    for ax, last in zip(axes[1:], (-0.4, 1.6), strict=True):
        _input_and_shortcut(ax, channels, last)
    titles = (f"(a) {c} paths, their outputs summed", "(b) paths to the 3×3, concatenated, "
              "one 1×1", f"(c) one grouped convolution ({c} groups)")
    for ax, title in zip(axes, titles, strict=True):
        _frame(ax, title)
    fig.suptitle(f"ResNeXt's aggregated transform, C = {c}, d = {d}: three forms, one "
                 "function (Xie et al. 2017, Fig. 3)", fontsize=10)
    fig.tight_layout()
    return fig


def draw_inception_vs_resnext(transform: AggregatedTransform) -> plt.Figure:
    """An Inception module (four different branches, concatenated, no shortcut) beside
    ResNeXt's form (a) of `transform` (C identical paths, summed, plus the identity), with a
    caption on what identical paths buy: one grouped convolution."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.4))
    left.text(1.65, FORM_TOP, "x  (192 channels)", ha="center", va="center", fontsize=8.5,
              fontweight="bold")
    for x, branch in zip((0, 1.1, 2.2, 3.3), SZEGEDY2015_INCEPTION_3A, strict=True):
        _column(left, x, branch, top=3.6, face="#fde0c5")
        _arrow(left, (1.65, FORM_TOP - 0.25), (x, 3.85))
        _arrow(left, (x, 3.6 - len(branch) + 0.75), (1.65, FORM_ADD + 0.3))
    _column(left, 1.65, ["filter concatenation → 256"], top=FORM_ADD, face="#fff2cc")
    _frame(left, "Inception (Szegedy et al. 2015): 4 different branches")
    _form_a(right, transform)
    _frame(right, f"ResNeXt, form (a): {transform.cardinality} identical paths, summed")
    fig.text(0.5, 0.02, "Inception's branches differ in kernel and width, each designed by "
             "hand, so each needs its own convolutions. ResNeXt's paths all have one shape, so "
             "all of them\nfuse into one grouped convolution (form (c)): one layer to "
             "write, one kernel to run, and only C and d to choose.", ha="center", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------
# A grouped convolution as a weight matrix, and the function-class argument


def connectivity(conv: nn.Conv2d) -> np.ndarray:
    """Which input channels each output channel of `conv` reads: an (out, in) matrix of 0/1,
    all ones for a dense conv, block-diagonal with `groups` blocks for a grouped one."""
    out_group = np.arange(conv.out_channels) // (conv.out_channels // conv.groups)
    in_group = np.arange(conv.in_channels) // (conv.in_channels // conv.groups)
    return (out_group[:, None] == in_group[None, :]).astype(float)


def draw_connectivity(conv: nn.Conv2d, ax: plt.Axes | None = None, title: str = ""
                      ) -> plt.Figure:
    """A conv's output × input channel grid, dark where a weight connects them (one k×k
    kernel each), with its weight count."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(4, 4))
    ax = ax or fig.add_subplot()
    k = conv.kernel_size[0]
    ax.imshow(connectivity(conv), cmap="Greys", vmin=0, vmax=1.4, interpolation="nearest")
    ax.set(xlabel=f"input channel (of {conv.in_channels})",
           ylabel=f"output channel (of {conv.out_channels})",
           title=title or f"{conv.groups} group{'s' if conv.groups > 1 else ''}: "
                          f"{conv.weight.numel():,} weights ({k}×{k} each)")
    return fig


def draw_function_classes(axes: Sequence[plt.Axes] | None = None) -> plt.Figure:
    """d2l's picture of why depth needs the identity (Zhang et al., *Dive into Deep Learning*
    §8.6): non-nested function classes F1, F2, F3 may move away from the truth f* as they
    grow; nested ones (each contains the last, as a bigger net that can copy the smaller one
    and set its extra blocks to the identity does) can only get closer."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    fig = axes[0].figure
    truth = (2.8, 1.6)
    shapes = {"non-nested function classes": [((0.9, 0.4), 1.3, 1.0), ((-0.4, -0.5), 1.7, 1.1),
                                              ((-1.0, -1.0), 2.3, 1.4)],
              "nested function classes": [((0.2, -0.3), 1.3, 0.9), ((0.6, 0.0), 2.3, 1.6),
                                          ((1.0, 0.3), 3.4, 2.3)]}
    for ax, (title, ellipses) in zip(axes, shapes.items(), strict=True):
        for i, ((x, y), w, h) in enumerate(ellipses):
            colour = plt.cm.viridis(0.3 * i)
            ax.add_patch(matplotlib.patches.Ellipse((x, y), 2 * w, 2 * h, fill=False, lw=1.5,
                                                    color=colour))
            ax.text(x - 0.5 * w, y + 0.55 * h, f"F{i + 1}", color=colour, fontsize=11,
                    ha="center", va="center")
        ax.plot(*truth, "*", color="#c00", ms=14)
        ax.text(truth[0] + 0.2, truth[1] + 0.1, "f* (the truth)", color="#c00", fontsize=9)
        ax.set(xlim=(-4.2, 5.4), ylim=(-3.2, 3.0), title=title, aspect="equal")
        ax.axis("off")
    fig.suptitle("More capacity cannot move further from f* if the bigger class contains the "
                 "smaller one: a block that can be the identity (F(x) = 0) makes them nested",
                 fontsize=9.5)
    fig.tight_layout()
    return fig
