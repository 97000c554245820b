"""The network strip: a net as a row of cells (the stem, one per residual block, the head),
each cell's gradient norm, and the one log colour scale that the strip, the explorer's plot
and the network drawings share."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import matplotlib
from torch import nn

from ..instruments.hooks import weight_layers
from ..nets.blocks import blocks_of, stage_name, stage_of

LOG_RANGE = (-4.0, 2.0)      # the colour scale: 1e-4 ... 1e2, in log10 of a gradient norm
COLORSCALE = "Viridis"       # perceptually even and readable with red-green colour blindness


@dataclass(frozen=True)
class Cell:
    """One cell of the strip: the stem, a residual block, or the head."""

    name: str                # "stem", "head", or the block's module name, e.g. "layer2.3"
    kind: str                # "stem", "block" or "head"
    stage: str               # "stem", "layer2", "blocks", "head"
    layers: tuple[str, ...]  # the conv/linear layers inside it (gradient_profile's names)

    @property
    def label(self) -> str:
        """Short text for a tooltip: 'stage 2, block 4' or 'stem'."""
        if self.kind != "block":
            return self.name
        return f"{stage_name(self.name)}, block {int(self.name.rpartition('.')[2]) + 1}"


def strip_cells(model: nn.Module) -> list[Cell]:
    """The model's cells in network order: the layers before the first block form the stem,
    each block one cell, the layers after the last block the head. Projection shortcuts count
    with their block."""
    blocks = list(blocks_of(model))
    owned: dict[str, list[str]] = {name: [] for name in blocks}
    stem: list[str] = []
    head: list[str] = []
    for layer in weight_layers(model, shortcuts=True):
        owner = next((b for b in blocks if layer.startswith(b + ".")), None)
        if owner is not None:
            owned[owner].append(layer)
        else:
            (head if any(owned.values()) else stem).append(layer)
    cells = [Cell("stem", "stem", "stem", tuple(stem))] if stem else []
    cells += [Cell(b, "block", stage_of(b), tuple(owned[b])) for b in blocks]
    if head:
        cells.append(Cell("head", "head", "head", tuple(head)))
    return cells


def cell_norms(cells: Sequence[Cell], layer_norms: Mapping[str, float]) -> list[float]:
    """Each cell's gradient norm: the norm of all its layers' gradients together,
    sqrt(sum of squares); layers missing from `layer_norms` count as 0."""
    return [math.sqrt(sum(layer_norms.get(layer, 0.0) ** 2 for layer in cell.layers))
            for cell in cells]


@lru_cache(maxsize=1)
def _palette() -> list[str]:
    """The colour scale's entries as '#rrggbb', looked up once (a strip paints ~100 cells a
    click)."""
    cmap = matplotlib.colormaps[COLORSCALE.lower()]
    return ["#" + "".join(f"{round(255 * c):02x}" for c in cmap(i)[:3]) for i in range(cmap.N)]


def norm_colour(value: float, log_range: tuple[float, float] = LOG_RANGE) -> str:
    """The colour of a gradient norm on the shared log scale, as '#rrggbb'."""
    lo, hi = log_range
    position = (math.log10(value) - lo) / (hi - lo) if value > 0 else 0.0
    palette = _palette()
    return palette[min(int(min(max(position, 0.0), 1.0) * len(palette)), len(palette) - 1)]


def text_colour(background: str) -> str:
    """Black or white, whichever reads better on `background` ('#rrggbb')."""
    r, g, b = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"
