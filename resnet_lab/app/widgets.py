"""The app's building blocks: the network strip (the net as a row of clickable cells),
labelled controls, the shared constants, and matplotlib pictures for a W.Image."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Collection, Mapping
from contextlib import contextmanager

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from ..nets.checks import depths
from ..pictures.plots import STRIP_LEFT, STRIP_WIDTH
from ..pictures.strip import Cell, cell_norms, norm_colour, strip_cells, text_colour

DEPTHS = depths("basic")                   # 6n+2: 8, 14, ..., 110 (basic blocks, the MLP)
BOTTLENECK_DEPTHS = depths("bottleneck")   # 9n+2: 11, 20, ..., 110
SEED = 0                                   # every net the app builds starts from these weights
BLANK = "\u00a0"                            # a label that shows nothing (a non-breaking space)


def labelled(text: str, tip: str, widget: W.Widget) -> W.Widget:
    """`widget` with its label `text` and the hover tip `tip` (labels 120 px wide)."""
    widget.description = text
    widget.tooltip = tip
    widget.style = {"description_width": "120px"}
    return widget


def snap_depth(slider: W.SelectionSlider, block: str) -> None:
    """Give a depth slider the depths of `block` (6n+2 basic, 9n+2 bottleneck), at the one
    nearest its current value."""
    options = BOTTLENECK_DEPTHS if block == "bottleneck" else DEPTHS
    nearest = min(options, key=lambda d: abs(d - slider.value))
    slider.options = options
    slider.value = nearest


def png(figure) -> bytes:
    """A matplotlib figure as PNG bytes (for a W.Image), the figure closed afterwards."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


class NetworkStrip:
    """A network drawn as a row of cells — stem, one button per residual block, head —
    coloured by gradient norm on the shared log scale (`strip.norm_colour`).

    Each block is a real button: reachable with Tab, pressed with a click, Enter or Space,
    which calls `on_click(block name)`. A marked block (skip cut, or block deleted) shows
    `mark` and a dashed border, so the state never relies on colour alone.
    """

    def __init__(self, on_click: Callable[[str], None], *, mark: str = "✂",
                 marked_text: str = "skip cut", unmarked_text: str = "skip on",
                 action: str = "cut or restore its skip"):
        self.on_click = on_click
        self.mark, self.marked_text, self.unmarked_text = mark, marked_text, unmarked_text
        self.action = action
        self.cells: list[Cell] = []
        self.buttons: list[W.Button] = []
        self.widget = W.HBox(layout=W.Layout(padding=f"0 0 0 {STRIP_LEFT}px",
                                             flex_flow="row nowrap"))

    @property
    def cell_width(self) -> int:
        return max(12, min(48, STRIP_WIDTH // max(len(self.cells), 1)))

    def show(self, model: torch.nn.Module, norms: Mapping[str, float] | None,
             marked: Collection[str], clickable: Collection[str]) -> list[float]:
        """Draw `model`: cells coloured by `norms` (layer name -> gradient norm; None: grey),
        the `marked` blocks marked, only the `clickable` ones enabled. Returns the cell norms."""
        cells = strip_cells(model)
        if [c.name for c in cells] != [c.name for c in self.cells]:
            self.cells = cells
            self.buttons = [self._button(c) for c in cells]
            self.widget.children = self.buttons
        values = cell_norms(cells, norms) if norms else [0.0] * len(cells)
        for cell, button, value in zip(cells, self.buttons, values, strict=True):
            self._paint(button, cell, value if norms else None, cell.name in marked,
                        cell.name in clickable)
        return values

    def _button(self, cell: Cell) -> W.Button:
        button = W.Button(layout=W.Layout(width=f"{self.cell_width}px", height="34px",
                                          padding="0", margin="0"))
        button.add_class("strip-cell")
        if cell.kind == "block":
            button.on_click(lambda _, name=cell.name: self.on_click(name))
        return button

    def _label(self, cell: Cell) -> str:
        """An unmarked cell's text where the cells are wide enough: "in", the block's stage and
        number ("2.4" for layer2.4; an MLP's "3" for blocks.3), "out"; else a blank."""
        if self.cell_width < 20:
            return BLANK
        short = cell.name.removeprefix("layer").removeprefix("blocks.")
        return {"stem": "in", "head": "out"}.get(cell.kind, short)

    def _paint(self, button: W.Button, cell: Cell, value: float | None, marked: bool,
               clickable: bool) -> None:
        colour = norm_colour(value) if value is not None else "#e6e6e6"
        button.style.button_color = colour
        button.style.text_color = text_colour(colour)
        button.style.font_size = "11px"
        # never "": ipywidgets 8 leaves a button's old text when label and icon are both empty
        button.description = self.mark if marked else self._label(cell)
        button.layout.border = "2px dashed #000" if marked else "1px solid #555"
        button.disabled = not clickable
        norm = f"gradient norm {value:.2g}" if value is not None else "no gradient yet"
        state = f": {self.marked_text if marked else self.unmarked_text}" \
            if cell.kind == "block" else ""
        hint = f" Click to {self.action}." if clickable else ""
        button.tooltip = f"{cell.name} ({cell.label}){state}; {norm}.{hint}"
        (button.add_class if marked else button.remove_class)("strip-marked")


@contextmanager
def quietly(panel):
    """Change several of `panel`'s controls with its redraws held back (`panel.quiet`)."""
    panel.quiet = True
    try:
        yield panel
    finally:
        panel.quiet = False


def html_text(value: str) -> str:
    """A readout's HTML as plain text (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", value))
