"""Residual networks behave like ensembles of shallow paths (Veit et al. 2016).

Unrolled, n residual blocks give 2**n paths from input to output (each block: through F or
around it). Deleting one block removes half of the paths but leaves the other half intact; in
a plain network every path goes through every block, so deleting one breaks them all.
"""

from __future__ import annotations

from contextlib import contextmanager
from math import comb

from torch import nn

from .blocks import ResidualBlock


def path_lengths(n_blocks: int) -> list[int]:
    """How many of the 2**n paths pass through k residual branches, for k = 0..n."""
    return [comb(n_blocks, k) for k in range(n_blocks + 1)]


def deletable_blocks(model: nn.Module) -> list[str]:
    """Blocks that keep the shape (no downsampling): deleting one leaves a valid network."""
    return [n for n, m in model.named_modules()
            if isinstance(m, ResidualBlock) and m.downsample is None]


@contextmanager
def without_block(model: nn.Module, name: str):
    """Delete block `name` for the duration of the `with`: its output becomes its input."""
    if name not in deletable_blocks(model):
        raise ValueError(f"name={name!r} is not a deletable block; choose one of "
                         f"{deletable_blocks(model)[:3]} ...")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    block = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    try:
        yield model
    finally:
        setattr(parent, child, block)
