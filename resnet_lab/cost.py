"""What a network costs: its table of stages (stem, stage 1-4, head) with output shapes,
parameters and multiply-accumulates, counted by `torch.utils.flop_counter`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .models import stage_name


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


def flop_counts(module: nn.Module, input_size: Sequence[int]) -> dict[str, dict]:
    """FLOPs per (sub)module and operator for one forward pass on zeros of `input_size`, from
    `torch.utils.flop_counter`. Runs in eval mode, so BatchNorm statistics are not touched."""
    from torch.utils.flop_counter import FlopCounterMode

    if len(input_size) < 2 or not all(isinstance(s, int) and s > 0 for s in input_size):
        raise ValueError(f"input_size={tuple(input_size)!r} is not allowed; give the batch and "
                         "feature dimensions as positive integers, e.g. (1, 3, 224, 224)")
    counter = FlopCounterMode(display=False)
    device = next(module.parameters()).device
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad(), counter:
            module(torch.zeros(*input_size, device=device))
    finally:
        module.train(was_training)
    return counter.get_flop_counts()


def complexity(module: nn.Module, input_size: Sequence[int]) -> tuple[int, int]:
    """(parameters, MACs) of any module for one input of `input_size` (batch included)."""
    macs = sum(flop_counts(module, input_size).get("Global", {}).values()) // 2
    return sum(p.numel() for p in module.parameters()), macs


def summary(model: nn.Module, input_size: Sequence[int]) -> Summary:
    """Per-stage table (stem, stage 1-4, head) of output shape, parameters and MACs.

    MACs come from `torch.utils.flop_counter` (FLOPs / 2), not from hand-written formulas.
    `input_size` includes the batch dimension, e.g. (1, 3, 224, 224).
    """
    children = list(model.named_children())
    stages: dict[str, dict] = {}
    for name, child in children:
        row = stages.setdefault(stage_name(name), {"params": 0, "modules": []})
        row["params"] += sum(p.numel() for p in child.parameters())
        row["modules"].append(name)
    # a stage's output is its last module's output (modules are listed in network order)
    shapes: dict[str, tuple[int, ...]] = {}
    last = {stage: dict(children)[info["modules"][-1]] for stage, info in stages.items()}
    handles = [module.register_forward_hook(
        lambda m, i, o, s=stage: shapes.__setitem__(s, tuple(o.shape)))
        for stage, module in last.items()]
    try:
        counts = flop_counts(model, input_size)   # keys: "ResNet.layer1", "ResNet.layer1.0", ...
    finally:
        for h in handles:
            h.remove()
    root = type(model).__name__
    rows = []
    for stage, info in stages.items():
        flops = sum(sum(counts.get(f"{root}.{name}", {}).values()) for name in info["modules"])
        rows.append(StageRow(stage, shapes.get(stage, ()), info["params"], flops // 2))
    return Summary(rows, tuple(input_size))
