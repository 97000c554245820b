"""What a network costs: its table of stages (stem, stage 1-4, head) with output shapes,
parameters and multiply-accumulates, counted by `torch.utils.flop_counter`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..nets.blocks import stage_name
from ..nets.devices import device_of, in_mode


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


def zeros_pass(module: nn.Module, input_size: Sequence[int], watch: Iterable[str] = (),
               counter: FlopCounterMode | None = None) -> dict[str, tuple[int, ...]]:
    """One forward pass of zeros of `input_size` (batch included) on the module's device, in
    eval mode (BatchNorm statistics untouched) and without autograd, counted by `counter`
    when given. Returns the output shape of each submodule named in `watch`."""
    if len(input_size) < 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size={tuple(input_size)!r} is not allowed; give the batch and "
                         "feature dimensions as positive integers, e.g. (1, 3, 224, 224)")
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [module.get_submodule(name).register_forward_hook(
        lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape))) for name in watch]
    try:
        with in_mode(module, training=False), torch.no_grad(), counter or nullcontext():
            module(torch.zeros(*input_size, device=device_of(module)))
    finally:
        for h in handles:
            h.remove()
    return shapes


def parameter_count(module: nn.Module) -> int:
    """How many numbers the module learns: its parameters' elements, all together."""
    return sum(p.numel() for p in module.parameters())


def complexity(module: nn.Module, input_size: Sequence[int]) -> tuple[int, int]:
    """(parameters, MACs) of any module for one input of `input_size` (batch included), the
    MACs counted by `torch.utils.flop_counter` (FLOPs / 2)."""
    counter = FlopCounterMode(display=False)
    zeros_pass(module, input_size, counter=counter)
    return parameter_count(module), sum(counter.get_flop_counts().get("Global", {}).values()) // 2


def summary(model: nn.Module, input_size: Sequence[int]) -> Summary:
    """Per-stage table (stem, stage 1-4, head) of output shape, parameters and MACs.

    MACs come from `torch.utils.flop_counter` (FLOPs / 2), not from hand-written formulas.
    `input_size` includes the batch dimension, e.g. (1, 3, 224, 224).
    """
    stages: dict[str, dict] = {}
    for name, child in model.named_children():
        row = stages.setdefault(stage_name(name), {"params": 0, "modules": []})
        row["params"] += parameter_count(child)
        row["modules"].append(name)
    # a stage's output is its last module's output (modules are listed in network order)
    counter = FlopCounterMode(display=False)
    shapes = zeros_pass(model, input_size, [info["modules"][-1] for info in stages.values()],
                        counter)
    counts = counter.get_flop_counts()     # keys: "ResNet.layer1", "ResNet.layer1.0", ...
    root = type(model).__name__
    rows = []
    for stage, info in stages.items():
        flops = sum(sum(counts.get(f"{root}.{name}", {}).values()) for name in info["modules"])
        rows.append(StageRow(stage, shapes.get(info["modules"][-1], ()), info["params"],
                             flops // 2))
    return Summary(rows, tuple(input_size))
