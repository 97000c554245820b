"""What the lesson notebooks share: quick or full mode, and one-line verdicts.

Quick mode (CPU, CI, a laptop) uses small inputs, narrow nets and the built-in data so every
notebook runs top to bottom in about a minute or two; full mode (a GPU) uses the real sizes and
real images: CIFAR-10 when it can be had, else Fashion-MNIST, and only then the built-in set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from . import data
from .checks import check_choice
from .data import DATASETS


@dataclass(frozen=True)
class Settings:
    """Sizes for one mode. `datasets` is the order in which the lesson's data is tried."""

    mode: str
    size: int          # image side in pixels
    width: int         # channels of the first stage of a CIFAR net
    steps: int         # training steps of a live experiment
    batch_size: int
    datasets: tuple[str, ...]
    n_train: int


QUICK = Settings("quick", size=16, width=4, steps=300, batch_size=128, datasets=("synthetic",),
                 n_train=20_000)
# full mode: CIFAR-10 as in He et al. §4.2 when it can be had, else the real Fashion-MNIST
FULL = Settings("full", size=32, width=16, steps=2000, batch_size=128,
                datasets=("cifar10", "fashion_mnist", "synthetic"), n_train=50_000)


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
        chosen = replace(chosen, datasets=(forced,))
    print(f"{chosen.mode} mode: {chosen.size}x{chosen.size} images, width {chosen.width}, "
          f"{chosen.steps} steps, data: {' -> '.join(chosen.datasets)}")
    return chosen


def lesson_data(s: Settings) -> data.Dataset:
    """The lesson's dataset: the first of `s.datasets` that can be had (downloaded, or found in
    the data folder or Debian's package), with a printed line saying which one and why."""
    reasons = []
    for name in s.datasets:
        options = dict(size=s.size, n_train=s.n_train)
        if name == "synthetic":
            options["n_test"] = 2000
        try:
            images = data.load(name, **options)
        except (RuntimeError, FileNotFoundError, OSError) as err:
            reasons.append(f"{name} not available ({err})")
            continue
        why = "; ".join(reasons) or "first choice"
        print(f"data: {name}, {len(images.x_train):,} training images of "
              f"{list(images.shape)} ({why})")
        return images
    raise RuntimeError("no dataset could be loaded: " + "; ".join(reasons))


def verdict(name: str, shown: bool, evidence: str) -> None:
    """Print one line saying whether the lesson's phenomenon showed in this run."""
    print(f"VERDICT {name}: {evidence} -> {'shown' if shown else 'NOT shown'}")
