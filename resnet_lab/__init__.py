"""resnet-lab: see why deep plain networks fail and why skip connections fix them."""

from .blocks import BasicBlock, Bottleneck, MLPBlock, PadShortcut, ResidualBlock, blocks_of
from .configs import IMAGENET, CifarConfig, ImageNetConfig, MLPConfig
from .cost import complexity, summary
from .devices import pick_device
from .evaluation import evaluate, precise_bn
from .hooks import ActivationStats, GradientNorms, UpdateRatios, gradient_profile
from .models import (
    DeepMLP,
    ResNet,
    build,
    cifar_resnet,
    deep_mlp,
    is_plain,
    plain_net,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    resnext50_32x4d,
    resnext101_32x8d,
    set_skip,
    wide_resnet50_2,
)
from .regimes import first_last_ratio, regime

__version__ = "0.1.0"

__all__ = [
    "ActivationStats", "GradientNorms", "UpdateRatios", "first_last_ratio", "gradient_profile",
    "regime",
    "evaluate", "precise_bn",
    "CifarConfig", "ImageNetConfig", "MLPConfig", "DeepMLP", "IMAGENET", "pick_device", "blocks_of",
    "is_plain",
    "BasicBlock", "Bottleneck", "MLPBlock", "PadShortcut", "ResidualBlock", "ResNet", "build",
    "complexity", "cifar_resnet", "deep_mlp", "plain_net", "resnet18", "resnet34", "resnet50",
    "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d", "set_skip", "summary",
    "wide_resnet50_2",
]
