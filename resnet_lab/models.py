"""Network builders: CIFAR-style 6n+2 nets, the ImageNet ResNet/ResNeXt family, deep MLPs.

A plain network is the residual network with every skip gate at 0: the same layers and the
same parameters, so any difference in how they train comes from the skip connections alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import (
    INITS,
    SHORTCUTS,
    BasicBlock,
    Bottleneck,
    MLPBlock,
    ResidualBlock,
    check_choice,
    check_count,
    check_skip,
    is_block,
    norm_layer,
)

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A stem, stages of residual blocks (`layer1`, `layer2`, ...), global average pool and fc.

    Module names match torchvision's ResNet, so its `state_dict`s load with strict=True.
    `stem="imagenet"` is the 7x7/2 conv + 3x3/2 max-pool; `stem="cifar"` a single 3x3 conv.
    """

    def __init__(self, block: type[ResidualBlock], layers: Sequence[int],
                 widths: Sequence[int] = (64, 128, 256, 512), *, num_classes: int = 1000,
                 in_channels: int = 3, stem: str = "imagenet", shortcut: str = "B",
                 norm: bool = True, init: str = "he", skip: float = 1.0, preact: bool = False,
                 zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64):
        super().__init__()
        check_choice("stem", stem, ("imagenet", "cifar"))
        check_choice("shortcut", shortcut, SHORTCUTS)
        check_choice("init", init, INITS)
        check_skip(skip)
        if len(widths) != len(layers):
            raise ValueError(f"widths={tuple(widths)} and layers={tuple(layers)} must have one "
                             "entry per stage")
        self.preact = preact
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=not norm)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=not norm)
        self.bn1 = norm_layer(widths[0], norm)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()

        block_args = dict(shortcut=shortcut, norm=norm, skip=skip, preact=preact,
                          groups=groups, base_width=width_per_group)
        inplanes = widths[0]
        for i, (planes, n_blocks) in enumerate(zip(widths, layers, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = []
            for j in range(n_blocks):
                blocks.append(block(inplanes, planes, stride if j == 0 else 1, **block_args))
                inplanes = planes * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        # pre-activation nets end with the BN + ReLU that their last block left out
        self.final_norm = norm_layer(inplanes, norm) if preact else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        initialize(self, init, zero_init_residual)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and all stages: the picture before pooling."""
        if self.preact:
            x = self.maxpool(self.conv1(x))
        else:
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        if self.final_norm is not None:
            x = self.relu(self.final_norm(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


def initialize(model: nn.Module, init: str = "he", zero_init_residual: bool = False) -> None:
    """He (kaiming-normal, fan-out) init of convs, BN to (1, 0); or PyTorch's default init.

    `zero_init_residual` zeroes the last BN of every residual branch (or its last conv when
    there is no BN), so each block starts as the identity (Goyal et al. 2017).
    """
    check_choice("init", init, INITS)
    if init == "he":
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, ResidualBlock):
                last = getattr(m, m.last_norm)
                if m.preact or not isinstance(last, nn.BatchNorm2d):
                    last = m.conv3 if isinstance(m, Bottleneck) else m.conv2
                nn.init.zeros_(last.weight)


def _remember(model: nn.Module, builder: str, **kwargs) -> nn.Module:
    """Record how a model was built, so a saved run can rebuild it (see `build`)."""
    model.config = {"builder": builder, **kwargs}
    return model


def cifar_resnet(depth: int = 20, *, num_classes: int = 10, in_channels: int = 3,
                 width: int = 16, block: str = "basic", shortcut: str = "A", norm: bool = True,
                 init: str = "he", skip: float = 1.0, preact: bool = False,
                 zero_init_residual: bool = False) -> ResNet:
    """The CIFAR-10 ResNet of He et al. 2015, §4.2: depth = 6n+2, three stages of n basic blocks
    with `width`, 2*width, 4*width channels (16/32/64 in the paper), option-A shortcuts, global
    average pool, fc. Works on any input size of at least 4x4 (the lessons use 16x16 for speed).

    `block="bottleneck"` gives the 9n+2 bottleneck variant (He et al. 2016) for comparisons.
    """
    check_choice("block", block, tuple(BLOCKS))
    per_block = 2 if block == "basic" else 3
    if not isinstance(depth, int) or depth < 3 * per_block + 2 or (depth - 2) % (3 * per_block):
        rule = "6n+2 (8, 14, 20, 32, 44, 56, 110, ...)" if block == "basic" else \
               "9n+2 (11, 20, 29, 56, 110, 164, ...)"
        raise ValueError(f"depth={depth!r} is not allowed for block={block!r}; use {rule}")
    check_count("width", width)
    n = (depth - 2) // (3 * per_block)
    model = ResNet(BLOCKS[block], [n, n, n], [width, 2 * width, 4 * width],
                   num_classes=num_classes, in_channels=in_channels, stem="cifar",
                   shortcut=shortcut, norm=norm, init=init, skip=skip, preact=preact,
                   zero_init_residual=zero_init_residual)
    return _remember(model, "cifar_resnet", depth=depth, num_classes=num_classes,
                     in_channels=in_channels, width=width, block=block, shortcut=shortcut,
                     norm=norm, init=init, skip=skip, preact=preact,
                     zero_init_residual=zero_init_residual)


def plain_net(depth: int = 20, **kwargs) -> ResNet:
    """The plain counterpart of `cifar_resnet`: the same network, every skip gate at 0."""
    if "skip" in kwargs:
        raise ValueError("plain_net has skip=0 by definition; use cifar_resnet(skip=...)")
    return cifar_resnet(depth, skip=0.0, **kwargs)


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


def imagenet_resnet(name: str, **kwargs) -> ResNet:
    """Build one of the ImageNet models by name (see `IMAGENET`); kwargs go to `ResNet`."""
    check_choice("name", name, tuple(IMAGENET))
    block, layers, groups, width_per_group = IMAGENET[name]
    model = ResNet(BLOCKS[block], layers, groups=groups, width_per_group=width_per_group,
                   **kwargs)
    return _remember(model, "imagenet_resnet", name=name, **kwargs)


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: basic blocks [2, 2, 2, 2], 11.7M parameters."""
    return imagenet_resnet("resnet18", **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: basic blocks [3, 4, 6, 3], 21.8M parameters."""
    return imagenet_resnet("resnet34", **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: bottleneck blocks [3, 4, 6, 3], 25.6M parameters, 4.1 GMACs at 224x224."""
    return imagenet_resnet("resnet50", **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: bottleneck blocks [3, 4, 23, 3], 44.5M parameters."""
    return imagenet_resnet("resnet101", **kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152: bottleneck blocks [3, 8, 36, 3], 60.2M parameters."""
    return imagenet_resnet("resnet152", **kwargs)


def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d): ResNet-50 with 32 groups of 4 channels in each 3x3 conv."""
    return imagenet_resnet("resnext50_32x4d", **kwargs)


def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 (32x8d)."""
    return imagenet_resnet("resnext101_32x8d", **kwargs)


def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with twice the channels in each bottleneck."""
    return imagenet_resnet("wide_resnet50_2", **kwargs)


class DeepMLP(nn.Module):
    """input layer -> `depth` MLPBlocks -> output layer."""

    def __init__(self, depth: int, width: int, activation: str, skip: float, in_features: int,
                 out_features: int, branch_scale: float):
        super().__init__()
        self.input = nn.Linear(in_features, width)
        self.blocks = nn.Sequential(*[
            MLPBlock(width, ACTIVATIONS[activation](), skip, branch_scale) for _ in range(depth)])
        self.head = nn.Sequential(ACTIVATIONS[activation](), nn.Linear(width, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.input(x.flatten(1))))


def deep_mlp(depth: int = 20, width: int = 64, activation: str = "sigmoid", skip: float = 0.0,
             *, in_features: int = 64, out_features: int = 10,
             branch_scale: float = 1.0) -> DeepMLP:
    """A deep fully connected net of `depth` blocks h <- scale * W act(h) + b + skip * h.

    With skip=0 it is an ordinary deep MLP (sigmoid: the textbook vanishing gradient);
    with skip=1 each block adds its input back, as in a ResNet.
    """
    check_choice("activation", activation, tuple(ACTIVATIONS))
    check_skip(skip)
    for arg, value in (("depth", depth), ("width", width), ("in_features", in_features),
                       ("out_features", out_features)):
        check_count(arg, value)
    model = DeepMLP(depth, width, activation, skip, in_features, out_features, branch_scale)
    return _remember(model, "deep_mlp", depth=depth, width=width, activation=activation,
                     skip=skip, in_features=in_features, out_features=out_features,
                     branch_scale=branch_scale)


BUILDERS = {"cifar_resnet": cifar_resnet, "imagenet_resnet": imagenet_resnet,
            "deep_mlp": deep_mlp}


def build(config: dict) -> nn.Module:
    """Rebuild a model from its `model.config` (as saved with a run)."""
    config = dict(config)
    builder = config.pop("builder", None)
    check_choice("builder", builder, tuple(BUILDERS))
    return BUILDERS[builder](**config)


# ---------------------------------------------------------------------------------------------
# The skip knob on a built model


def blocks_of(model: nn.Module) -> dict[str, nn.Module]:
    """All blocks with a skip gate, by name, in network order."""
    return {name: m for name, m in model.named_modules() if is_block(m)}


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
                stages = ", ".join(sorted({n.split(".")[0] for n in all_blocks}))
                example = next(iter(all_blocks), "-")
                raise ValueError(f"blocks={prefix!r} names no block; allowed: a stage "
                                 f"({stages}) or a block such as {example!r}")
            chosen += [n for n in hits if n not in chosen]
    for name in chosen:
        all_blocks[name].skip = value
    return chosen


# ---------------------------------------------------------------------------------------------
# summary: a per-stage table of shapes, parameters and multiply-accumulates


@dataclass
class StageRow:
    stage: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class Summary:
    """Per-stage shapes, parameters and MACs. One MAC = one multiply-add = 2 FLOPs."""

    rows: list[StageRow]
    input_size: tuple[int, ...]

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'stage':<8} {'output shape':<20} {'parameters':>12} {'MMACs':>10}"]
        for r in self.rows:
            lines.append(f"{r.stage:<8} {str(list(r.output_shape)):<20} {r.params:>12,} "
                         f"{r.macs / 1e6:>10.1f}")
        lines.append(f"{'total':<8} {'':<20} {self.params:>12,} {self.macs / 1e6:>10.1f}")
        lines.append(f"= {self.params / 1e6:.1f}M parameters, {self.macs / 1e9:.2f} GMACs "
                     f"(multiply-accumulates) for input {list(self.input_size)}")
        return "\n".join(lines)

    __repr__ = __str__


def _stage_name(child: str) -> str:
    if child in ("conv1", "bn1", "relu", "maxpool", "input"):
        return "stem"
    if child.startswith("layer"):
        return "stage " + child[len("layer"):]
    if child in ("avgpool", "fc", "final_norm", "head"):
        return "head"
    return child


def flop_counts(module: nn.Module, input_size: Sequence[int]) -> dict[str, dict]:
    """FLOPs per (sub)module and operator for one forward pass on zeros of `input_size`, from
    `torch.utils.flop_counter`. Runs in eval mode, so BatchNorm statistics are not touched."""
    from torch.utils.flop_counter import FlopCounterMode

    if len(input_size) < 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size={tuple(input_size)!r} is not allowed; give the batch and "
                         "feature dimensions as positive integers, e.g. (1, 3, 224, 224)")
    counter = FlopCounterMode(display=False)
    device = next(module.parameters()).device
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad(), counter:
            module(torch.zeros(*input_size, device=device))
    finally:
        module.train(was_training)
    return counter.get_flop_counts()


def complexity(module: nn.Module, input_size: Sequence[int]) -> tuple[int, int]:
    """(parameters, MACs) of any module for one input of `input_size` (batch included)."""
    macs = sum(flop_counts(module, input_size).get("Global", {}).values()) // 2
    return sum(p.numel() for p in module.parameters()), macs


def summary(model: nn.Module, input_size: Sequence[int]) -> Summary:
    """Per-stage table (stem, stage 1-4, head) of output shape, parameters and MACs.

    MACs come from `torch.utils.flop_counter` (FLOPs / 2), not from hand-written formulas.
    `input_size` includes the batch dimension, e.g. (1, 3, 224, 224).
    """
    children = list(model.named_children())
    stages: dict[str, dict] = {}
    for name, child in children:
        row = stages.setdefault(_stage_name(name), {"params": 0, "modules": []})
        row["params"] += sum(p.numel() for p in child.parameters())
        row["modules"].append(name)
    # a stage's output is its last module's output (modules are listed in network order)
    shapes: dict[str, tuple[int, ...]] = {}
    last = {stage: dict(children)[info["modules"][-1]] for stage, info in stages.items()}
    handles = [module.register_forward_hook(
        lambda m, i, o, s=stage: shapes.__setitem__(s, tuple(o.shape)))
        for stage, module in last.items()]
    try:
        counts = flop_counts(model, input_size)   # keys: "ResNet.layer1", "ResNet.layer1.0", ...
    finally:
        for h in handles:
            h.remove()
    root = type(model).__name__
    rows = []
    for stage, info in stages.items():
        flops = sum(sum(counts.get(f"{root}.{name}", {}).values()) for name in info["modules"])
        rows.append(StageRow(stage, shapes.get(stage, ()), info["params"], flops // 2))
    return Summary(rows, tuple(input_size))
