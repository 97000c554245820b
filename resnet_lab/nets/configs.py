"""Configs: one frozen dataclass per kind of network, as nanoGPT's `GPTConfig`. A model keeps
the config it was built from (`model.config`); it goes into saved runs whole (`config_to_dict`),
and `models.build(config)` makes the same network again. Bad fields are refused when the config
is made, before any tensor work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import NamedTuple

from torch import nn

from .blocks import BasicBlock, Bottleneck, ResidualBlock
from .checks import INITS, SHORTCUTS, blocks_per_stage, check_choice, check_count, check_gates

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}   # keys: checks.BLOCK_TYPES
IMAGENET = {  # name: (block, blocks per stage, groups, width per group) — He et al. Table 1
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 1, 128),
}


class Architecture(NamedTuple):
    """What a ResNet config says about its layout: the block type, blocks per stage, channels
    per stage, the stem ("imagenet": 7x7/2 conv + max-pool; "cifar": one 3x3 conv), and the
    groups and width per group of the 3x3 convs (ResNeXt)."""

    block: type[ResidualBlock]
    layers: Sequence[int]
    widths: Sequence[int]
    stem: str
    groups: int = 1
    width_per_group: int = 64


@dataclass(frozen=True, kw_only=True)
class ResNetOptions:
    """What every ResNet config holds besides its size (keyword-only fields).

    `seed` (when given) fixes the initial weights without touching the global random state.
    `groups` and `width_per_group` (ResNeXt's cardinality C and width d of the bottlenecks'
    3x3 convs) replace the architecture's own (None: keep them). `skip` is the skip gate of
    every block, or a tuple of one gate per block in network order.
    """

    num_classes: int = 1000
    in_channels: int = 3
    shortcut: str = "B"
    norm: bool = True
    init: str = "he"
    skip: float | tuple[float, ...] = 1.0
    preact: bool = False
    zero_init_residual: bool = False
    seed: int | None = None
    groups: int | None = None
    width_per_group: int | None = None

    def __post_init__(self) -> None:
        for arg in ("num_classes", "in_channels"):
            check_count(arg, getattr(self, arg))
        check_count("groups", self.groups, allow_none=True)
        check_count("width_per_group", self.width_per_group, allow_none=True)
        check_choice("shortcut", self.shortcut, SHORTCUTS)
        check_choice("init", self.init, INITS)
        object.__setattr__(self, "skip", check_gates(self.skip, n_blocks(self)))


@dataclass(frozen=True)
class CifarConfig(ResNetOptions):
    """A CIFAR-style net (He et al. 2015, §4.2): 6n+2 layers of basic blocks (9n+2 with
    bottlenecks), stages of `width`, 2*`width` and 4*`width` channels, option-A shortcuts."""

    depth: int = 20
    width: int = 16
    block: str = "basic"
    num_classes: int = field(default=10, kw_only=True)
    shortcut: str = field(default="A", kw_only=True)

    def __post_init__(self) -> None:
        blocks_per_stage(self.depth, self.block)
        check_count("width", self.width)
        if self.block == "basic" and (self.groups, self.width_per_group) != (None, None):
            raise ValueError("groups and width_per_group need block='bottleneck' (a BasicBlock "
                             f"has no grouped 3x3), got block={self.block!r}")
        super().__post_init__()

    def architecture(self) -> Architecture:
        """Three stages of n blocks (depth = 6n+2, or 9n+2 for bottlenecks), `width`,
        2*`width` and 4*`width` channels, the one-conv CIFAR stem."""
        n = blocks_per_stage(self.depth, self.block)
        w = self.width
        return Architecture(BLOCKS[self.block], (n, n, n), (w, 2 * w, 4 * w), "cifar",
                            self.groups or 1, self.width_per_group or 64)


@dataclass(frozen=True)
class ImageNetConfig(ResNetOptions):
    """One of the ImageNet models of `IMAGENET` (He et al. 2015 Table 1, ResNeXt, WRN), by
    name. `groups` and `width_per_group` (ResNeXt's cardinality C and width d) replace the
    named model's, e.g. Xie et al.'s (C, d) variants of ResNet-50 at the same budget."""

    name: str = "resnet50"

    def __post_init__(self) -> None:
        check_choice("name", self.name, tuple(IMAGENET))
        super().__post_init__()

    def architecture(self) -> Architecture:
        """The named model's row of `IMAGENET`: 64/128/256/512 channels, the 7x7 stem with
        max-pool, and this config's groups and width per group where it gives them."""
        block, layers, groups, width_per_group = IMAGENET[self.name]
        return Architecture(BLOCKS[block], layers, (64, 128, 256, 512), "imagenet",
                            self.groups or groups, self.width_per_group or width_per_group)


@dataclass(frozen=True)
class MLPConfig:
    """A deep fully connected net of `depth` blocks h <- scale * (W act(h) + b) + skip * h;
    `hidden` > 0 gives each block a two-layer branch, scale * (W2 act(W1 h + b1) + b2)
    (`skip`: one gate for every block, or a tuple of one per block)."""

    depth: int = 20
    width: int = 64
    activation: str = "sigmoid"
    skip: float | tuple[float, ...] = 0.0
    in_features: int = 64
    out_features: int = 10
    branch_scale: float = 1.0
    init: str = "default"
    hidden: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.hidden, bool) or not isinstance(self.hidden, int) or self.hidden < 0:
            raise ValueError(f"hidden={self.hidden!r} is not allowed; use 0 (a one-layer "
                             "branch) or a whole number of hidden units")
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_choice("init", self.init, INITS)
        for arg in ("depth", "width", "in_features", "out_features"):
            check_count(arg, getattr(self, arg))
        object.__setattr__(self, "skip", check_gates(self.skip, n_blocks(self)))


Config = CifarConfig | ImageNetConfig | MLPConfig


def n_blocks(config: Config) -> int:
    """How many blocks (each with a skip gate) the config's net has."""
    return config.depth if isinstance(config, MLPConfig) else sum(config.architecture().layers)


def gates_of(config: Config) -> tuple[float, ...]:
    """Every block's skip gate, in network order."""
    skip = config.skip
    return skip if isinstance(skip, tuple) else (skip,) * n_blocks(config)
KINDS = {"cifar_resnet": CifarConfig, "imagenet_resnet": ImageNetConfig, "deep_mlp": MLPConfig}


def make_config(kind: type[Config], args: tuple, options: dict) -> Config:
    """The config a builder was called with: `args[0]` when it is already a `kind` (with
    `options` replacing fields), else `kind(*args, **options)`. Unknown options get a
    ValueError that lists the allowed ones."""
    if args and isinstance(args[0], kind):
        return replace(args[0], **options)
    allowed = [f.name for f in fields(kind)]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ValueError(f"{unknown[0]}={options[unknown[0]]!r} is not allowed here; the "
                         f"options are {', '.join(allowed)}")
    return kind(*args, **options)


def config_to_dict(config: Config) -> dict:
    """A JSON-ready form of a config: {"builder": ..., its fields ...}."""
    builder = next(name for name, kind in KINDS.items() if isinstance(config, kind))
    return {"builder": builder, **asdict(config)}


def config_from_dict(saved: dict) -> Config:
    """The config that `config_to_dict` wrote."""
    saved = dict(saved)
    builder = saved.pop("builder", None)
    check_choice("builder", builder, tuple(KINDS))
    return make_config(KINDS[builder], (), saved)
