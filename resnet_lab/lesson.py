"""What the lesson notebooks share: quick or full mode, one-line verdicts, and the checks of the
build-it-yourself exercises.

Quick mode (CPU, CI, a laptop) uses small inputs, narrow nets and the built-in data so every
notebook runs top to bottom in about a minute or two; full mode (a GPU) uses the real sizes and
real images: CIFAR-10 when it can be had, else Fashion-MNIST, and only then the built-in set.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from . import data
from .blocks import Bottleneck, make_shortcut
from .checks import check_choice
from .cost import parameter_count
from .data import DATASETS
from .history import History
from .models import named_net, resnet18
from .train import compare


@dataclass(frozen=True)
class Settings:
    """Sizes for one mode. `datasets` is the order in which a lesson's data is tried, and
    `degradation_datasets` that of the degradation experiment (lessons 1-3); `download`
    says whether a missing dataset may be downloaded (quick mode uses only what is offline)."""

    mode: str
    size: int          # image side in pixels
    width: int         # channels of the first stage of a CIFAR net
    steps: int         # training steps of a live experiment
    batch_size: int
    datasets: tuple[str, ...]
    n_train: int
    degradation_datasets: tuple[str, ...] = ()
    download: bool = False

    @property
    def degradation_order(self) -> tuple[str, ...]:
        """The degradation experiment's data order (`datasets` when none is given)."""
        return self.degradation_datasets or self.datasets


QUICK = Settings("quick", size=16, width=4, steps=300, batch_size=128, datasets=("synthetic",),
                 n_train=20_000, degradation_datasets=("fashion_mnist", "synthetic"))
# full mode: CIFAR-10 as in He et al. §4.2 when it can be had, else the real Fashion-MNIST
FULL = Settings("full", size=32, width=16, steps=2000, batch_size=128,
                datasets=data.BEST_FIRST, n_train=50_000, degradation_datasets=data.BEST_FIRST,
                download=True)


def settings(mode: str | None = None) -> Settings:
    """The lesson's sizes: `mode` "quick" or "full"; None reads $RESNET_LAB_MODE, else picks
    full on a CUDA GPU and quick elsewhere. $RESNET_LAB_DATASET forces one dataset."""
    mode = mode or os.environ.get("RESNET_LAB_MODE") or \
        ("full" if torch.cuda.is_available() else "quick")
    check_choice("mode", mode, ("quick", "full"))
    chosen = FULL if mode == "full" else QUICK
    forced = os.environ.get("RESNET_LAB_DATASET")
    if forced:
        check_choice("RESNET_LAB_DATASET", forced, DATASETS)
        chosen = replace(chosen, datasets=(forced,), degradation_datasets=(forced,))
    print(f"{chosen.mode} mode: {chosen.size}x{chosen.size} images, width {chosen.width}, "
          f"{chosen.steps} steps. Data: {first_here(chosen.datasets)}; the degradation "
          f"experiment (lessons 1-4) uses {first_here(chosen.degradation_order)}.")
    return chosen


def first_here(names: tuple[str, ...]) -> str:
    """A data order in words: "synthetic", or "fashion_mnist if this machine has it, else
    synthetic"."""
    *preferred, last = names
    return "".join(f"{name} if this machine has it, else " for name in preferred) + last


def lesson_data(s: Settings, datasets: tuple[str, ...] | None = None) -> data.Dataset:
    """The lesson's dataset: the first of `datasets` (default `s.datasets`) that can be had
    (found in the data folder or Debian's package, or downloaded if `s.download`), with a
    printed line saying which one and why."""
    images, why = data.first_loadable(datasets or s.datasets, download=s.download, size=s.size,
                                      n_train=s.n_train)
    print(f"data: {images.name}, {len(images.x_train):,} training images of "
          f"{list(images.shape)} ({why})")
    return images


def degradation_data(s: Settings) -> data.Dataset:
    """The degradation experiment's data: the real Fashion-MNIST whenever it is offline (quick
    mode) or CIFAR-10 first (full mode); the built-in synthetic set last."""
    return lesson_data(s, s.degradation_order)


DEGRADATION_NETS = ("plain-20", "plain-56", "ResNet-20", "ResNet-56")


def degradation_nets(s: Settings, images: data.Dataset,
                     names: tuple[str, ...] = DEGRADATION_NETS, seed: int = 0
                     ) -> dict[str, nn.Module]:
    """He et al.'s Fig. 1 / Fig. 6 nets at the lesson's sizes, untrained, named like "plain-56"
    (a plain or residual CIFAR net and its depth), from the same weights seed."""
    return {name: named_net(name, width=s.width, seed=seed, **images.net_options)
            for name in names}


def degradation_runs(s: Settings, images: data.Dataset,
                     names: tuple[str, ...] = DEGRADATION_NETS, seed: int = 0, **options
                     ) -> tuple[dict[str, nn.Module], dict[str, History]]:
    """He et al.'s Fig. 1 / Fig. 6 experiment at the lesson's sizes: the `degradation_nets`,
    the same initial weights (`seed`) and batches, a constant learning rate of 0.1. Each net
    trains as it would beside the others, so a lesson may train only those it needs. Returns
    the nets and their histories."""
    nets = degradation_nets(s, images, names, seed)
    runs = compare(nets, images, steps=s.steps, batch_size=s.batch_size,
                   recipe="constant", seed=seed, **options)
    return nets, runs


TINY = 1e-30   # stands in for an exact zero in a ratio: a margin is then huge, not inf


@dataclass(frozen=True)
class Verdict:
    """A lesson's claim, measured. `margin` is the measured value over the threshold that
    states the claim, oriented so that above 1 means shown (2 = twice as clear as the claim
    needs); `evidence` says what was measured and the claim's threshold; `name` is the claim
    function that made it (the key of its measured spread, `MARGINS_FILE`)."""

    claim: str
    margin: float
    evidence: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "margin", float(self.margin))   # not a numpy scalar

    @property
    def shown(self) -> bool:
        return self.margin > 1

    def __str__(self) -> str:
        return f"VERDICT {self.claim}: {self.evidence} -> {'shown' if self.shown else 'NOT shown'}"


CLAIMS: dict[str, Callable[..., Verdict]] = {}   # every claim function of the lessons, by name


def claim(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
    """Mark `fn` as a lesson's claim function: registered in `CLAIMS`, and each Verdict it
    returns carries its name, so a lesson can show the spread bench_verdicts measured for it."""
    @functools.wraps(fn)
    def named(*args, **kwargs) -> Verdict:
        return replace(fn(*args, **kwargs), name=fn.__name__)
    if fn.__name__ in CLAIMS:
        raise ValueError(f"a claim function named {fn.__name__!r} exists already: names are "
                         "the keys of the measured spreads, so each must be unique")
    CLAIMS[fn.__name__] = named
    return named


# bench_verdicts' summary: per claim function, its runs, how many showed it, min/median margin
MARGINS_FILE = Path(__file__).parent / "experiments" / "verdict_margins.json"


def spread(name: str) -> str:
    """One line: what bench_verdicts measured for claim function `name` over seeds, data sets
    and CPU kernel sets ("" for a verdict that is no claim function's)."""
    if not name:
        return ""
    if not MARGINS_FILE.exists():
        return f"  spread: not measured yet ({MARGINS_FILE.name}: run benchmarks/bench_verdicts.py)"
    measured = json.loads(MARGINS_FILE.read_text())["verdicts"].get(name)
    if measured is None:
        return f"  spread: {name} is not in {MARGINS_FILE.name} (run benchmarks/bench_verdicts.py)"
    return (f"  spread over {measured['runs']} runs of bench_verdicts ({measured['over']}): "
            f"shown in {measured['shown']}, margin min {measured['min']}, "
            f"median {measured['median']}")


def verdict(v: Verdict) -> None:
    """Print the verdict's line (whether the lesson's phenomenon showed in this run) and, below
    it, the spread of its margin that bench_verdicts measured over seeds, data and CPUs."""
    print(v)
    if v.name:
        print(spread(v.name))


# ---------------------------------------------------------------------------------------------
# Build it yourself: checks for the students' own blocks and networks

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
