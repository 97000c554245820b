"""The widget app: a gradient-flow explorer and a training lab (JupyterLab or Voilà).

    from resnet_lab.app import app
    app()

Explorer: the network is drawn as a strip of cells (stem, one per residual block, head), and
the strip is the control: click a block to cut its skip connection, click again to restore
it. Every change recomputes the per-layer gradient profile at initialization (models are
cached; changing a skip gate never rebuilds) and colours each block by its gradient norm.
Presets set every control in one click.

Training lab: Train runs `train.compare` in a background thread, so Stop stays clickable; the
curves, the layer x step heatmap and each net's strip are redrawn at most every
`redraw_seconds`. After training, the strips become a lesion view (Veit et al. 2016): click a
block of a trained net to delete it and see its test error at once.

The package, one module per job: `widgets` (the strip, labelled controls), `explorer`,
`training_lab`, `lesion` and `lesson_controls`.
"""

from __future__ import annotations

import ipywidgets as W

from .explorer import PRESETS, Explorer, cached_model
from .lesion import LesionView
from .lesson_controls import ArchitectureExplorer, CardinalityExplorer
from .training_lab import LivePlots, TrainingLab
from .widgets import NetworkStrip

__all__ = ["PRESETS", "ArchitectureExplorer", "CardinalityExplorer", "Explorer",
           "LesionView", "LivePlots", "NetworkStrip", "TrainingLab", "app", "cached_model"]


def app() -> W.Widget:
    """The whole app: the explorer and the training lab, in two tabs. The lab is built when
    its tab is first opened, so the first page shows sooner."""
    explorer = Explorer()
    tabs = W.Tab([explorer.widget, W.HTML("building the training lab ...")])
    tabs.set_title(0, "Explorer")
    tabs.set_title(1, "Training lab")
    tabs.explorer, tabs.lab = explorer, None

    def open_lab(change) -> None:
        if change["new"] == 1 and tabs.lab is None:
            tabs.lab = TrainingLab()
            tabs.children = [explorer.widget, tabs.lab.widget]

    tabs.observe(open_lab, names="selected_index")
    return tabs
