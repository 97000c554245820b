"""Residual blocks whose skip connection you can switch off while the model runs.

Every block computes the lecture's equation

    y = relu(F(x) + skip * shortcut(x))

where F is the *residual branch* (a few conv/BN/ReLU layers) and `skip` is a gate in [0, 1]:
1 gives the ResNet block of He et al. (2015), 0 gives the "plain" block relu(F(x)) with exactly
the same parameters. `skip` is a plain Python attribute, not a parameter or buffer, so changing it
never rebuilds the model and never changes its `state_dict`.

Names of sub-modules (conv1, bn1, ..., downsample) follow torchvision's `models/resnet.py`, so
torchvision's pretrained weights load into our ImageNet models unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .checks import SHORTCUTS, check_choice, check_count, check_skip


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
            bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with padding 1."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=bias)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """1x1 convolution: changes the number of channels, not the picture."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=bias)


def norm_layer(channels: int, norm: bool) -> nn.Module:
    """BatchNorm, or a no-op when normalization is switched off."""
    return nn.BatchNorm2d(channels) if norm else nn.Identity()


class PadShortcut(nn.Module):
    """Shortcut option A (He et al. 2015, §4.2): identity with a stride, and the new channels
    filled with zeros. It has no parameters, so a plain and a residual net stay the same size."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def make_shortcut(in_planes: int, out_planes: int, stride: int, shortcut: str,
                  norm: bool) -> nn.Module | None:
    """The shortcut for a block: None (identity) when the shape is unchanged, else option A
    (zero-padding) or option B (1x1 projection + BN)."""
    check_choice("shortcut", shortcut, SHORTCUTS)
    if stride == 1 and in_planes == out_planes:
        return None
    if shortcut == "A":
        if out_planes < in_planes:
            raise ValueError("shortcut='A' can only add channels; use shortcut='B' to reduce them")
        return PadShortcut(stride, out_planes - in_planes)
    return nn.Sequential(conv1x1(in_planes, out_planes, stride, bias=not norm),
                         norm_layer(out_planes, norm))


class ResidualBlock(nn.Module):
    """What every block shares: the skip gate, the shortcut and the final addition.

    Subclasses define `residual(x)`, the branch F(x).
    """

    expansion = 1
    last_norm: str = "bn2"

    def __init__(self, skip: float = 1.0, preact: bool = False):
        super().__init__()
        self.skip = skip
        self.preact = preact
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None

    @property
    def skip(self) -> float:
        """The skip gate: 0 = plain block (F(x) only), 1 = residual block (F(x) + x)."""
        return self._skip

    @skip.setter
    def skip(self, value: float) -> None:
        self._skip = check_skip(value)

    def residual(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The identity, or option A/B where the block changes the shape."""
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)                            # F(x)
        if self.skip:                                     # skip = 0: a plain block, relu(F(x))
            out = out + self.skip * self.shortcut(x)      # F(x) + x
        return out if self.preact else self.relu(out)     # pre-activation blocks add last

    def extra_repr(self) -> str:
        return f"skip={self.skip:g}" + (", preact=True" if self.preact else "")


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (ResNet-18/34 and the CIFAR nets).

    F(x) = BN(conv(ReLU(BN(conv(x)))));  pre-activation (He et al. 2016):
    F(x) = conv(ReLU(BN(conv(ReLU(BN(x)))))).
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, *, shortcut: str = "B",
                 norm: bool = True, skip: float = 1.0, preact: bool = False,
                 groups: int = 1, base_width: int = 64):
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock supports only groups=1 and base_width=64 "
                             f"(got groups={groups}, base_width={base_width}); use Bottleneck")
        super().__init__(skip, preact)
        self.conv1 = conv3x3(inplanes, planes, stride, bias=not norm)
        self.bn1 = norm_layer(planes if not preact else inplanes, norm)
        self.conv2 = conv3x3(planes, planes, bias=not norm)
        self.bn2 = norm_layer(planes, norm)
        self.downsample = make_shortcut(inplanes, planes, stride, shortcut, norm)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            out = self.conv1(self.relu(self.bn1(x)))
            return self.conv2(self.relu(self.bn2(out)))
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 reduce -> 3x3 process -> 1x1 restore (ResNet-50/101/152), e.g. 256 -> 64 -> 64 -> 256.

    `groups` and `base_width` make the 3x3 conv grouped and wider: groups=32, base_width=4 is
    ResNeXt's 32x4d block; base_width=128 is Wide ResNet-50-2's. The stride sits on the 3x3
    conv ("ResNet v1.5", as in torchvision).
    """

    expansion = 4
    last_norm = "bn3"

    def __init__(self, inplanes: int, planes: int, stride: int = 1, *, shortcut: str = "B",
                 norm: bool = True, skip: float = 1.0, preact: bool = False,
                 groups: int = 1, base_width: int = 64):
        check_count("groups", groups)
        check_count("base_width", base_width)
        if (planes * base_width) % 64:
            raise ValueError(f"planes * base_width / 64 must be a whole number of channels per "
                             f"group (got planes={planes}, base_width={base_width})")
        super().__init__(skip, preact)
        width = planes * base_width // 64 * groups   # channels of the 3x3 conv
        out_planes = planes * self.expansion
        self.conv1 = conv1x1(inplanes, width, bias=not norm)
        self.bn1 = norm_layer(width if not preact else inplanes, norm)
        self.conv2 = conv3x3(width, width, stride, groups, bias=not norm)
        self.bn2 = norm_layer(width, norm)
        self.conv3 = conv1x1(width, out_planes, bias=not norm)
        self.bn3 = norm_layer(out_planes if not preact else width, norm)
        self.downsample = make_shortcut(inplanes, out_planes, stride, shortcut, norm)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            out = self.conv1(self.relu(self.bn1(x)))
            out = self.conv2(self.relu(self.bn2(out)))
            return self.conv3(self.relu(self.bn3(out)))
        out = self.relu(self.bn1(self.conv1(x)))   # 1x1: reduce
        out = self.relu(self.bn2(self.conv2(out)))  # 3x3: process
        return self.bn3(self.conv3(out))           # 1x1: restore


class MLPBlock(nn.Module):
    """A fully connected block for the vanishing-gradient lesson: y = F(x) + skip * x with
    F(x) = scale * (W act(x) + b), so skip = 0 is an ordinary layer of a deep MLP.
    With `hidden` units the branch has two layers, F(x) = scale * (W2 act(W1 x + b1) + b2),
    so that even at skip = 0 the block can compute the identity (act = ReLU:
    x = relu(x) - relu(-x))."""

    def __init__(self, width: int, activation: nn.Module, skip: float = 1.0,
                 branch_scale: float = 1.0, hidden: int = 0):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden) if hidden else None
        self.act = activation
        self.fc = nn.Linear(hidden or width, width)
        self.branch_scale = branch_scale
        self.skip = skip

    skip = ResidualBlock.skip

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc1 is not None:
            x = self.fc1(x)
        return self.branch_scale * self.fc(self.act(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)          # F(x)
        if self.skip:
            out = out + self.skip * x   # F(x) + x
        return out

    def extra_repr(self) -> str:
        return f"skip={self.skip:g}, branch_scale={self.branch_scale:g}"


def is_block(module: nn.Module) -> bool:
    """True for the modules that own a skip gate."""
    return isinstance(module, (ResidualBlock, MLPBlock))


def blocks_of(model: nn.Module) -> dict[str, nn.Module]:
    """All blocks with a skip gate, by name, in network order."""
    return {name: m for name, m in model.named_modules() if is_block(m)}


def stage_of(module: str) -> str:
    """The net's top-level part a module belongs to, by its name: "layer2.3.conv1" -> "layer2"
    (a stage of a ResNet), "blocks.4" -> "blocks"; "conv1" and "fc" stay themselves."""
    return module.split(".")[0]


def stage_name(module: str) -> str:
    """What a lesson calls the part of a ResNet a module belongs to: "layer2.3.conv1" ->
    "stage 2"; the stem's modules -> "stem", the pooling and fc -> "head"."""
    child = stage_of(module)
    if child in ("conv1", "bn1", "relu", "maxpool", "input"):
        return "stem"
    if child.startswith("layer"):
        return "stage " + child[len("layer"):]
    if child in ("avgpool", "fc", "final_norm", "head"):
        return "head"
    return child
