"""Network builders: CIFAR-style 6n+2 nets, the ImageNet ResNet/ResNeXt family, deep MLPs,
each `Net(config)` (configs.py), initialized by init.py, and the skip knob on a built net.

A plain network is the residual network with every skip gate at 0: the same layers and the
same parameters, so any difference in how they train comes from the skip connections alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import torch
from torch import nn

from .blocks import MLPBlock, blocks_of, norm_layer, stage_of
from .checks import check_skip
from .configs import (
    ACTIVATIONS,
    CifarConfig,
    Config,
    ImageNetConfig,
    MLPConfig,
    config_from_dict,
    gates_of,
    make_config,
    n_blocks,
)
from .init import build_seeded, initialize, initialize_mlp


class GatedNet(nn.Module):
    """A net whose blocks have skip gates: `model.config` is the config it was built from,
    with `skip` as the gates are now, however they were set (`set_skip`, or `block.skip = 0`),
    so `build(model.config)` always makes the same net again."""

    @property
    def config(self) -> Config:
        gates = tuple(b.skip for b in blocks_of(self).values())
        if len(gates) != n_blocks(self.built_from):
            raise ValueError(f"this net has {len(gates)} blocks where its config builds "
                             f"{n_blocks(self.built_from)} (a block deleted or added): no "
                             "config describes it")
        if gates == gates_of(self.built_from):
            return self.built_from
        return replace(self.built_from, skip=gates)


class ResNet(GatedNet):
    """A stem, stages of residual blocks (`layer1`, `layer2`, ...), global average pool and fc,
    built from its config as nanoGPT's `GPT(config)`: `ResNet(CifarConfig(56))`,
    `ResNet(ImageNetConfig("resnet50"))`. `model.config` is that config; `build` makes the same
    net from it again. Module names match torchvision's ResNet, so its `state_dict`s load with
    strict=True. Weights: drawn from torch's global generator, as any PyTorch module's (the
    builders, given `seed`, draw them from a generator of their own instead).
    """

    def __init__(self, config: CifarConfig | ImageNetConfig):
        super().__init__()
        if not isinstance(config, (CifarConfig, ImageNetConfig)):
            raise ValueError(f"config={config!r} is not allowed; give a CifarConfig or an "
                             "ImageNetConfig")
        self.built_from = c = config
        arch = c.architecture()
        widths, self.preact = arch.widths, c.preact
        if arch.stem == "imagenet":
            self.conv1 = nn.Conv2d(c.in_channels, widths[0], 7, stride=2, padding=3,
                                   bias=not c.norm)
        else:
            self.conv1 = nn.Conv2d(c.in_channels, widths[0], 3, padding=1, bias=not c.norm)
        # a pre-activation net's first block normalises its own input: no BN in the stem
        self.bn1 = nn.Identity() if c.preact else norm_layer(widths[0], c.norm)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if arch.stem == "imagenet" else nn.Identity()
        block_args = dict(shortcut=c.shortcut, norm=c.norm, preact=c.preact,
                          groups=arch.groups, base_width=arch.width_per_group)
        gates = iter(gates_of(c))
        inplanes = widths[0]
        for i, (planes, stage_blocks) in enumerate(zip(widths, arch.layers, strict=True)):
            blocks = []
            for j in range(stage_blocks):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(arch.block(inplanes, planes, stride, skip=next(gates),
                                         **block_args))
                inplanes = planes * arch.block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(arch.layers)
        # pre-activation nets end with the BN + ReLU that their last block left out
        self.final_norm = norm_layer(inplanes, c.norm) if c.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, c.num_classes)
        initialize(self, c.init, c.zero_init_residual)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and all stages: the picture before pooling."""
        x = self.conv1(x)
        if not self.preact:
            x = self.relu(self.bn1(x))
        x = self.maxpool(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        if self.final_norm is not None:
            x = self.relu(self.final_norm(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def cifar_resnet(depth: int | CifarConfig = 20, **options) -> ResNet:
    """The CIFAR-10 ResNet of He et al. 2015, §4.2: depth = 6n+2, three stages of n basic blocks
    with 16/32/64 channels (`width` 16), option-A shortcuts, global average pool, fc. Works on
    any input size of at least 4x4 (the lessons use 16x16 for speed).

    Takes a `CifarConfig`, or its fields as arguments: `cifar_resnet(56, width=4)`.
    `block="bottleneck"` gives the 9n+2 bottleneck variant (He et al. 2016) for comparisons;
    adding `groups` and `width_per_group` makes its 3x3 convs ResNeXt's (C paths of d channels).
    """
    return seeded_resnet(make_config(CifarConfig, (depth,), options))


def seeded_resnet(config: CifarConfig | ImageNetConfig) -> ResNet:
    """`ResNet(config)`, its weights drawn from a generator of its own when `config.seed` is
    given (the global random state untouched)."""
    return build_seeded(lambda: ResNet(config),
                        lambda m, g: initialize(m, config.init, config.zero_init_residual, g),
                        config.seed)


def plain_net(depth: int | CifarConfig = 20, **options) -> ResNet:
    """The plain counterpart of `cifar_resnet`: the same network, every skip gate at 0."""
    if "skip" in options:
        raise ValueError("plain_net has skip=0 by definition; use cifar_resnet(skip=...)")
    return cifar_resnet(depth, **options, skip=0.0)


NET_KINDS = {"plain": 0.0, "ResNet": 1.0}   # what the lessons call a CIFAR net: its skip gate


def named_net(name: str, **options) -> ResNet:
    """The CIFAR net the lessons call `name`, "plain-56" or "ResNet-20": `cifar_resnet` of that
    depth with every skip gate at 0 or 1; `options` are `CifarConfig`'s other fields."""
    kind, _, depth = name.partition("-")
    if kind not in NET_KINDS or not depth.isdigit():
        raise ValueError(f"name={name!r} is not allowed; use 'plain-<depth>' or "
                         "'ResNet-<depth>', e.g. 'plain-56'")
    return cifar_resnet(int(depth), skip=NET_KINDS[kind], **options)


def imagenet_resnet(name: str | ImageNetConfig, **options) -> ResNet:
    """Build one of the ImageNet models by name (see `IMAGENET`) or from an `ImageNetConfig`."""
    return seeded_resnet(make_config(ImageNetConfig, (name,), options))


# One documented function per ImageNet model, as torchvision writes them. `seed` fixes the
# initial weights, the global random state untouched.

def resnet18(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNet-18 (He et al. 2015, Table 1): basic blocks [2, 2, 2, 2], 11.7M parameters,
    1.8 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnet18", num_classes=num_classes, seed=seed, **options)


def resnet34(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNet-34 (He et al. 2015, Table 1): basic blocks [3, 4, 6, 3], 21.8M parameters,
    3.7 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnet34", num_classes=num_classes, seed=seed, **options)


def resnet50(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNet-50 (He et al. 2015, Table 1): bottleneck blocks [3, 4, 6, 3], 25.6M
    parameters, 4.1 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnet50", num_classes=num_classes, seed=seed, **options)


def resnet101(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNet-101 (He et al. 2015, Table 1): bottleneck blocks [3, 4, 23, 3], 44.5M
    parameters, 7.8 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnet101", num_classes=num_classes, seed=seed, **options)


def resnet152(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNet-152 (He et al. 2015, Table 1): bottleneck blocks [3, 8, 36, 3], 60.2M
    parameters, 11.5 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnet152", num_classes=num_classes, seed=seed, **options)


def resnext50_32x4d(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNeXt-50 (32x4d) (Xie et al. 2017, Table 1): ResNet-50 with 32 groups of
    4 channels in each 3x3 conv, 25.0M parameters, 4.2 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnext50_32x4d", num_classes=num_classes, seed=seed, **options)


def resnext101_32x8d(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """ResNeXt-101 (32x8d) (Xie et al. 2017): ResNet-101's stages with 32 groups of
    8 channels in each 3x3 conv, 88.8M parameters, 16.4 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("resnext101_32x8d", num_classes=num_classes, seed=seed, **options)


def wide_resnet50_2(*, num_classes: int = 1000, seed: int | None = None, **options) -> ResNet:
    """Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): ResNet-50 with twice the
    channels inside each bottleneck, 68.9M parameters, 11.4 GMACs at 224x224.
    `options`: `ImageNetConfig`'s other fields (in_channels, shortcut, norm, init, skip,
    preact, zero_init_residual, groups, width_per_group).
    """
    return imagenet_resnet("wide_resnet50_2", num_classes=num_classes, seed=seed, **options)


class DeepMLP(GatedNet):
    """input layer -> `depth` MLPBlocks -> output layer, built from an `MLPConfig`
    (`model.config`)."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        if not isinstance(config, MLPConfig):
            raise ValueError(f"config={config!r} is not allowed; give an MLPConfig")
        self.built_from = c = config
        act = ACTIVATIONS[c.activation]
        self.input = nn.Linear(c.in_features, c.width)
        self.blocks = nn.Sequential(*[MLPBlock(c.width, act(), skip, c.branch_scale, c.hidden)
                                      for skip in gates_of(c)])
        self.head = nn.Sequential(act(), nn.Linear(c.width, c.out_features))
        initialize_mlp(self, c.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.input(x.flatten(1))))


def deep_mlp(*args, **options) -> DeepMLP:
    """A deep fully connected net of `depth` blocks h <- scale * W act(h) + b + skip * h.

    Takes an `MLPConfig`, or its fields: `deep_mlp(20, 64, "sigmoid", skip=0.0)` (depth, width,
    activation and skip may be given by position). `init="he"` draws the weights as He et al.
    (2015b) do for ReLU nets; the default is PyTorch's own.
    With skip=0 it is an ordinary deep MLP (sigmoid: the textbook vanishing gradient);
    with skip=1 each block adds its input back, as in a ResNet.
    """
    c = make_config(MLPConfig, args, options)
    return build_seeded(lambda: DeepMLP(c), lambda m, g: initialize_mlp(m, c.init, g), c.seed)


BUILDERS = {CifarConfig: cifar_resnet, ImageNetConfig: imagenet_resnet, MLPConfig: deep_mlp}


def config_of(model: nn.Module) -> Config | None:
    """The config a lab model was built from; None for any other module."""
    return model.config if isinstance(model, (ResNet, DeepMLP)) else None


def build(config: Config | dict) -> nn.Module:
    """Rebuild a model from its `model.config` (a config dataclass, or its saved dictionary)."""
    if isinstance(config, dict):
        config = config_from_dict(config)
    builder = next((b for kind, b in BUILDERS.items() if isinstance(config, kind)), None)
    if builder is None:
        raise ValueError(f"config={config!r} is not allowed; give a CifarConfig, "
                         "ImageNetConfig or MLPConfig (or its saved dictionary)")
    return builder(config)


# ---------------------------------------------------------------------------------------------
# The skip knob on a built model


def is_plain(model: nn.Module) -> bool:
    """True when the model has skip gates and every one is at 0: a plain network."""
    gates = [block.skip for block in blocks_of(model).values()]
    return bool(gates) and not any(gates)


def set_skip(model: nn.Module, value: float, blocks: Iterable[str] | str | None = None
             ) -> list[str]:
    """Set the skip gate of every block (or of the named blocks or stages) and return the
    names changed. `blocks` takes names such as "layer2" (a whole stage) or "layer2.0".

    No parameters change, so you can flip a trained ResNet to "plain" and back.
    """
    value = check_skip(value)
    all_blocks = blocks_of(model)
    if blocks is None:
        chosen = list(all_blocks)
    else:
        wanted = [blocks] if isinstance(blocks, str) else list(blocks)
        chosen = []
        for prefix in wanted:
            hits = [n for n in all_blocks if n == prefix or n.startswith(prefix + ".")]
            if not hits:
                stages = ", ".join(sorted({stage_of(n) for n in all_blocks}))
                example = next(iter(all_blocks), "-")
                raise ValueError(f"blocks={prefix!r} names no block; allowed: a stage "
                                 f"({stages}) or a block such as {example!r}")
            chosen += [n for n in hits if n not in chosen]
    for name in chosen:
        all_blocks[name].skip = value
    return chosen
