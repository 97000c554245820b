"""Recipes: how a model is trained — SGD with momentum, weight decay and a learning-rate
schedule over the run (He et al. 2015 §4.2 and two short-run variants)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..nets.checks import check_choice, check_positive
from ..nets.configs import CifarConfig
from ..nets.models import config_of

ONECYCLE_WARMUP = 0.15   # the share of the steps over which one-cycle's lr rises


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and a learning-rate schedule over training progress p in [0, 1].

    schedule: "step" (÷10 at `milestones`), "onecycle" (linear warm-up for the first
    `ONECYCLE_WARMUP` of the steps, then cosine down to 0) or "constant". `warmup_error` > 0:
    a model of depth >= WARMUP_DEPTH trains at lr/10 until its training error is under
    `warmup_error` (He et al. 2015 §4.2 warmed ResNet-110 up at 0.01 until its training error
    was below 80%, about 400 iterations). `warmup_steps` > 0: such a model warms up for
    exactly that many steps instead, whatever its error (`with_warmup_steps`): one length for
    every model, so that two nets compared train at the very same learning rates.
    """

    name: str
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)
    warmup_error: float = 0.0
    warmup_steps: int = 0

    def sgd(self, params: Iterable[torch.Tensor], **options) -> torch.optim.SGD:
        """torch's SGD over `params` with this recipe's learning rate, momentum and weight
        decay; `options` are SGD's others (e.g. `fused=True`) or replace the recipe's."""
        return torch.optim.SGD(params, **{"lr": self.lr, "momentum": self.momentum,
                                          "weight_decay": self.weight_decay, **options})

    def lr_at(self, progress: float, warming_up: bool = False) -> float:
        """The learning rate at training progress p in [0, 1] (lr/10 while warming up)."""
        if warming_up:
            return self.lr / 10
        if self.schedule == "step":
            return self.lr * 0.1 ** sum(progress >= m for m in self.milestones)
        if self.schedule == "onecycle":
            if progress < ONECYCLE_WARMUP:
                return self.lr * max(progress / ONECYCLE_WARMUP, 0.04)
            return self.lr * 0.5 * (1 + math.cos(math.pi * (progress - ONECYCLE_WARMUP)
                                                 / (1 - ONECYCLE_WARMUP)))
        return self.lr


WARMUP_DEPTH = 110   # He et al. warmed up ResNet-110 (and deeper), not the shallower nets

RECIPES = {
    # He et al. 2015 §4.2: lr 0.1, /10 at 32k and 48k of 64k iterations, wd 1e-4, momentum 0.9
    "he2015": Recipe("he2015", 0.1, 0.9, 1e-4, "step", (0.5, 0.75), warmup_error=0.8),
    # short runs: one-cycle gets most out of a few hundred steps
    "quick": Recipe("quick", 0.1, 0.9, 5e-4, "onecycle"),
    # the degradation demo: a constant lr 0.1, the same for every model
    "constant": Recipe("constant", 0.1, 0.9, 5e-4, "constant"),
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    if isinstance(recipe, Recipe):
        check_choice("recipe.schedule", recipe.schedule, ("step", "onecycle", "constant"))
        return recipe
    check_choice("recipe", recipe, tuple(RECIPES))
    return RECIPES[recipe]


def with_lr(recipe: str | Recipe, lr: float) -> Recipe:
    """A recipe with another peak learning rate, named so that titles and histories say so."""
    check_positive("lr", lr)
    base = get_recipe(recipe)
    return replace(base, name=f"{base_name(base.name)} (lr {lr:g})", lr=lr)


def with_warmup_steps(recipe: str | Recipe, steps: int) -> Recipe:
    """A recipe whose warm-up lasts exactly `steps` steps for every model it warms up (a
    CIFAR net of WARMUP_DEPTH layers or more), named so that a run's setup says so."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; give a whole number of steps, >= 1")
    base = get_recipe(recipe)
    return replace(base, name=f"{base.name} (warm-up {steps} steps)", warmup_steps=steps)


def base_name(name: str) -> str:
    """A recipe's name without the "(lr ...)" that `with_lr` adds: "constant (lr 0.5)" ->
    "constant"."""
    return name.split(" (lr ")[0]


def warms_up(model: nn.Module, recipe: Recipe) -> bool:
    """Whether the recipe warms this model up: a CIFAR net of WARMUP_DEPTH layers or more."""
    config = config_of(model)
    return (recipe.warmup_error > 0 or recipe.warmup_steps > 0) and \
        isinstance(config, CifarConfig) and \
        config.depth >= WARMUP_DEPTH
