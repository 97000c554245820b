"""Quick or full mode: the sizes, data and nets every lesson shares.

Quick mode (CPU, CI, a laptop) uses small inputs, narrow nets and the data on the machine so
every notebook runs top to bottom in a minute or two; full mode (a GPU) uses the real sizes and
real images: CIFAR-10 when it can be had, else Fashion-MNIST, and only then the built-in set.
The degradation experiment (He et al.'s Fig. 1), which lessons 1-5 all draw on, lives here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..nets.checks import check_choice
from ..nets.models import named_net
from ..nets.paper import HE2015_CIFAR_SIZE, HE2015_CIFAR_WIDTH
from ..training import data
from ..training.data import DATASETS
from ..training.history import History
from ..training.train import compare


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
    paper = "" if (chosen.size, chosen.width) == (HE2015_CIFAR_SIZE, HE2015_CIFAR_WIDTH) else \
        f" (He et al.'s CIFAR nets: {HE2015_CIFAR_SIZE}x{HE2015_CIFAR_SIZE}, width " \
        f"{HE2015_CIFAR_WIDTH})"
    print(f"{chosen.mode} mode: {chosen.size}x{chosen.size} images, width {chosen.width}{paper}, "
          f"{chosen.steps} steps. The CNNs that lessons 1-4 train use "
          f"{first_here(chosen.degradation_order)}; the other trained experiments (lesson 1's "
          f"MLP, lesson 5) use {first_here(chosen.datasets)}.")
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
