"""Build it yourself: checks of a student's own ResNet-18 and Bottleneck against the lab's
(parameters, torchvision's names, and the same outputs once the weights are the same)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..instruments.cost import parameter_count
from ..nets.blocks import Bottleneck, make_shortcut
from ..nets.models import resnet18


def _compare(yours: nn.Module, reference: nn.Module, x: torch.Tensor) -> list[str]:
    """What differs between two modules: the parameter count, the names and shapes of their
    weights, and (after loading the reference's weights into yours) their outputs on x."""
    problems = []
    if parameter_count(yours) != parameter_count(reference):
        problems.append(f"{parameter_count(yours):,} parameters, the reference has "
                        f"{parameter_count(reference):,}")
    try:
        loaded = yours.load_state_dict(reference.state_dict(), strict=False)
    except RuntimeError as err:                   # a weight of the wrong shape
        return problems + [f"a weight has the wrong shape: {str(err).splitlines()[-1].strip()}"]
    if loaded.missing_keys or loaded.unexpected_keys:
        return problems + [f"names differ from torchvision's: missing {loaded.missing_keys[:3]},"
                           f" unexpected {loaded.unexpected_keys[:3]}"]
    yours.eval()
    reference.eval()
    with torch.no_grad():
        difference = (yours(x) - reference(x)).abs().max().item()
    if not difference < 1e-4:
        problems.append(f"with the same weights the outputs differ by up to {difference:.2g}")
    return problems


def _report(what: str, make: Callable[[], nn.Module], reference: nn.Module,
            x: torch.Tensor) -> bool:
    try:
        yours = make()
    except NotImplementedError as err:
        print(f"{what}: not written yet ({err})")
        return False
    problems = _compare(yours, reference, x)
    for problem in problems:
        print(f"{what}: ✗ {problem}")
    if not problems:
        print(f"{what}: ✓ same parameters, same names, same outputs as the reference")
    return not problems


def check_resnet18(make_model: Callable[[], nn.Module]) -> bool:
    """Your ResNet-18 (`make_model()` builds it) against `resnet_lab.resnet18`: 11,689,512
    parameters, torchvision's names, and the same output once it has the lab's weights."""
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return _report("ResNet-18", make_model, resnet18(seed=0), x)


def check_bottleneck(block_class: type[nn.Module]) -> bool:
    """Your Bottleneck(inplanes, planes, stride, downsample) against `resnet_lab.Bottleneck`,
    once keeping the shape (256 -> 64 -> 256) and once halving the picture with a projection."""
    g = torch.Generator().manual_seed(0)
    same = _report("Bottleneck(256, 64)", lambda: block_class(256, 64), Bottleneck(256, 64),
                   torch.randn(2, 256, 8, 8, generator=g))
    halving = _report("Bottleneck(256, 128, stride=2)",
                      lambda: block_class(256, 128, 2, make_shortcut(256, 512, 2, "B", True)),
                      Bottleneck(256, 128, stride=2), torch.randn(2, 256, 8, 8, generator=g))
    return same and halving
