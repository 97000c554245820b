"""The lessons' own live controls: block type x depth (lesson 3), cardinality x width at a
fixed budget (lesson 4)."""

from __future__ import annotations

import ipywidgets as W
import torch

from ..instruments.cost import complexity
from ..lessons.experiments import median_ms
from ..nets.blocks import Bottleneck, blocks_of
from ..nets.init import build_seeded, initialize
from ..nets.models import cifar_resnet
from ..nets.paper import XIE2017_TABLE2
from ..pictures.diagrams import draw_connectivity, draw_network
from .widgets import DEPTHS, SEED, html_text, labelled, png, quietly, snap_depth


class ArchitectureExplorer:
    """Lesson 3: a CIFAR net's block type and depth -> its parameters, MACs and drawing."""

    def __init__(self, width: int = 16, size: int = 32):
        self.width, self.size = width, size
        self.block = labelled("block", "Basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1)",
                              W.Dropdown(options=["basic", "bottleneck"], value="basic"))
        self.depth = labelled("depth (layers)", "6n+2 for basic blocks, 9n+2 for bottlenecks",
                              W.SelectionSlider(options=DEPTHS, value=20,
                                                continuous_update=False))
        self.readout = W.HTML()
        self.picture = W.Image(format="png")
        self.quiet = False
        self.block.observe(self.on_block, names="value")
        self.depth.observe(lambda change: self.quiet or self.update(), names="value")
        self.update()
        self.widget = W.VBox([W.HBox([self.block, self.depth]), self.readout, self.picture])

    def on_block(self, change) -> None:
        with quietly(self):
            snap_depth(self.depth, change["new"])
        self.update()

    def update(self) -> None:
        self.model = cifar_resnet(self.depth.value, block=self.block.value, width=self.width,
                                  seed=SEED)
        params, macs = complexity(self.model, (1, 3, self.size, self.size))
        blocks = len(blocks_of(self.model))
        self.readout.value = (f"<b>{self.block.value} blocks, {self.depth.value} layers</b>: "
                              f"{blocks} blocks, <b class='params'>{params:,}</b> parameters, "
                              f"<b>{macs / 1e6:.1f}</b> MMACs per {self.size}×{self.size} image")
        self.picture.value = png(self.drawing())

    def drawing(self):
        """The chosen net, drawn stage by stage (a matplotlib figure)."""
        return draw_network(self.model, (1, 3, self.size, self.size))

    def snapshot(self) -> list:
        """The readout and the drawing, for a page without a kernel."""
        return [html_text(self.readout.value), self.drawing()]


class CardinalityExplorer:
    """Lesson 4: cardinality C and width d at a fixed budget (Xie et al. Table 2) -> the
    stage-1 block's parameters, MACs and measured forward time. It starts at C = 1, ResNet-50's
    own block, where the lesson's question starts."""

    def __init__(self, size: int = 56, batch: int = 8):
        self.size, self.batch = size, batch
        self.cardinality = labelled("C × d", "Paths (cardinality) × channels per path; the "
                                    "complexity stays that of ResNet-50's block",
                                    W.SelectionSlider(options=[(f"{c} × {d}d", c) for c, d in
                                                               XIE2017_TABLE2], value=1,
                                                      continuous_update=False))
        self.readout = W.HTML()
        self.picture = W.Image(format="png")
        self.cardinality.observe(lambda change: self.update(), names="value")
        self.update()
        self.widget = W.VBox([self.cardinality, self.readout, self.picture])

    def update(self) -> None:
        c = self.cardinality.value
        d = dict(XIE2017_TABLE2)[c]
        self.block = build_seeded(lambda: Bottleneck(256, 64, groups=c, base_width=d),
                                  lambda m, g: initialize(m, generator=g), SEED).eval()
        params, macs = complexity(self.block, (1, 256, self.size, self.size))
        x = torch.randn(self.batch, 256, self.size, self.size,
                        generator=torch.Generator().manual_seed(SEED))
        ms = median_ms(lambda: self.block(x), repeats=5)
        self.readout.value = (
            f"<b>C = {c}, d = {d}</b>: 1×1 256→{c * d}, 3×3 {c * d}→{c * d} in {c} "
            f"group{'s' if c > 1 else ''}, "
            f"1×1 {c * d}→256: <b class='params'>{params:,}</b> parameters, "
            f"<b>{macs / 1e6:.0f}</b> MMACs per {self.size}×{self.size} picture, "
            f"<b>{ms:.1f} ms</b> for a batch of {self.batch} (median of 5)")
        self.picture.value = png(self.drawing())

    def drawing(self):
        """The block's 3×3 convolution as a weight grid: C blocks on the diagonal."""
        return draw_connectivity(self.block.conv2)

    def snapshot(self) -> list:
        """The readout and the weight grid, for a page without a kernel."""
        return [html_text(self.readout.value), self.drawing()]
