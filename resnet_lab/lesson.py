"""What the lesson notebooks share: quick or full mode, and one-line verdicts.

Quick mode (CPU, CI, a laptop) uses small inputs, narrow nets and the built-in data so every
notebook runs top to bottom in about a minute or two; full mode (a GPU) uses the real sizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .blocks import check_choice


@dataclass(frozen=True)
class Settings:
    """Sizes for one mode. `dataset` is "synthetic" or "cifar10" (falls back to synthetic)."""

    mode: str
    size: int          # image side in pixels
    width: int         # channels of the first stage of a CIFAR net
    steps: int         # training steps of a live experiment
    batch_size: int
    dataset: str
    n_train: int


QUICK = Settings("quick", size=16, width=4, steps=300, batch_size=128, dataset="synthetic",
                 n_train=20_000)
FULL = Settings("full", size=32, width=16, steps=2000, batch_size=128, dataset="cifar10",
                n_train=50_000)


def settings(mode: str | None = None) -> Settings:
    """The lesson's sizes: `mode` "quick" or "full"; None reads $RESNET_LAB_MODE, else picks
    full on a CUDA GPU and quick elsewhere."""
    mode = mode or os.environ.get("RESNET_LAB_MODE") or \
        ("full" if torch.cuda.is_available() else "quick")
    check_choice("mode", mode, ("quick", "full"))
    chosen = FULL if mode == "full" else QUICK
    print(f"{chosen.mode} mode: {chosen.size}x{chosen.size} images, width {chosen.width}, "
          f"{chosen.steps} steps, {chosen.dataset} data")
    return chosen


def lesson_data(s: Settings):
    """The lesson's dataset: CIFAR-10 in full mode when it can be had, else the built-in set."""
    from . import data

    if s.dataset == "cifar10":
        try:
            return data.cifar10(size=s.size, n_train=s.n_train)
        except (RuntimeError, FileNotFoundError) as err:
            print(f"CIFAR-10 not available ({err}); using the built-in synthetic set")
    return data.synthetic(s.n_train, 2000, size=s.size)


def verdict(name: str, shown: bool, evidence: str) -> None:
    """Print one line saying whether the lesson's phenomenon showed in this run."""
    print(f"VERDICT {name}: {evidence} -> {'shown' if shown else 'NOT shown'}")
