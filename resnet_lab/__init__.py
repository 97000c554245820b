"""resnet-lab: see why deep plain networks fail and why skip connections fix them.

The package is six layers, each a subpackage that imports only those before it (ARCHITECTURE.md
draws them): `nets` -> `instruments` -> `training` -> `grid` -> `pictures` -> `lessons`, then the
widget `app` and the command line (`cli`). `import resnet_lab as rl` gives the names a lesson
uses most: the blocks and builders, the instruments and `evaluate`.
"""

from .instruments.cost import complexity, summary
from .instruments.hooks import ActivationStats, GradientNorms, UpdateRatios, gradient_profile
from .instruments.regimes import first_last_ratio, regime
from .nets.blocks import BasicBlock, Bottleneck, MLPBlock, PadShortcut, ResidualBlock, blocks_of
from .nets.configs import IMAGENET, CifarConfig, ImageNetConfig, MLPConfig
from .nets.devices import pick_device
from .nets.models import (
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
from .training.evaluation import evaluate, precise_bn

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
