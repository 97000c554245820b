"""The explorer: the network is the control panel. Every change recomputes the per-layer
gradient profile at initialization (models cached; a skip gate never rebuilds) and colours
each block of the strip by its gradient norm; presets set every control in one click."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import ipywidgets as W
import plotly.graph_objects as go
import torch

from ..instruments.hooks import gradient_profile
from ..instruments.regimes import first_last_ratio, regime
from ..lessons.experiments.vanishing import mlp_batch
from ..nets.blocks import blocks_of, stage_name
from ..nets.models import ResNet, cifar_resnet, deep_mlp, set_skip
from ..pictures.diagrams import draw_network
from ..pictures.plots import explorer_figure, plot_profile, update_profile, update_strip_figure
from ..pictures.strip import cell_norms, norm_colour
from ..training import data as datasets
from .widgets import (
    BOTTLENECK_DEPTHS,
    DEPTHS,
    SEED,
    NetworkStrip,
    html_text,
    labelled,
    quietly,
    snap_depth,
)

KINDS = {"CIFAR ResNet (conv)": "cifar", "deep MLP, sigmoid": "sigmoid",
         "deep MLP, tanh": "tanh", "deep MLP, ReLU": "relu"}
STAGES = ("layer1", "layer2", "layer3")
REGIME_COLOURS = {"healthy": "#1a7f37", "vanishing": "#b35900", "exploding": "#c00000",
                  "no gradient": "#666666"}

BASE = dict(kind="CIFAR ResNet (conv)", depth=56, skip=0.0, norm=True, init="he",
            block="basic", preact=False)
PRESETS = {  # name: (the one line shown under it, the controls it sets)
    "deep sigmoid MLP (vanishing)": (
        "20 sigmoid layers, no skips: each one scales the gradient by σ′ ≤ 1/4.",
        dict(BASE, kind="deep MLP, sigmoid", depth=20, init="default")),
    "plain-56 with BatchNorm (exploding)": (
        "With BatchNorm a deep plain net's gradient grows towards the input.",
        dict(BASE)),
    "ResNet-56": (
        "The same 56 layers with identity skips: every block's gradient stays in range.",
        dict(BASE, skip=1.0)),
    "skip gate 0.5 over 27 blocks": (
        "y = F(x) + 0.5·x: the direct path shrinks to 0.5²⁷ ≈ 7e-9, so it acts plain.",
        dict(BASE, skip=0.5)),
    "pre-activation ResNet-110": (
        "He et al. 2016: BN-ReLU before each conv, nothing after the +: a clean identity path.",
        dict(BASE, depth=110, skip=1.0, preact=True)),
}
# the explorer opens on ResNet-56: every block's skip is on, so a click on one cuts it
START = PRESETS["ResNet-56"][1]


@lru_cache(maxsize=48)
def cached_model(kind: str, depth: int, norm: bool, init: str, block: str, preact: bool
                 ) -> torch.nn.Module:
    """Build (once) the network the explorer shows; the skip gates are set per call."""
    if kind == "cifar":
        return cifar_resnet(depth, norm=norm, init=init, block=block, preact=preact, seed=SEED)
    return deep_mlp(depth, width=64, activation=kind, skip=1.0, init=init, seed=SEED)


@lru_cache(maxsize=2)
def explorer_batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A small fixed batch: 8 synthetic 16x16 images, or the deep MLPs' 64 random vectors."""
    if kind == "cifar":
        d = datasets.synthetic(8, 1, size=16, seed=0)
        return d.x_train, d.y_train
    return mlp_batch(0)


def _readout(profile: Mapping[str, float], seconds: float | None = None) -> str:
    """The explorer's one line: ratio, regime word, layer count and time."""
    ratio, word = first_last_ratio(profile), regime(profile)
    took = f" &middot; {1000 * seconds:.0f} ms" if seconds is not None else ""
    return (f"first layer / last layer gradient norm = <b>{ratio:.3g}</b>: "
            f"<b class='regime' style='color:{REGIME_COLOURS[word]}'>{word}</b>"
            f" <span style='color:#666'>({len(profile)} layers{took})</span>")


@dataclass(frozen=True)
class ExplorerState:
    """Everything the explorer's picture depends on: the controls' values, the stages whose
    skips are switched off and the blocks whose skip was cut on the strip."""

    kind: str = "cifar"              # "cifar", or a deep MLP's activation
    depth: int = 56
    skip: float = 0.0
    norm: bool = True
    init: str = "he"
    block: str = "basic"
    preact: bool = False
    stages_off: tuple[str, ...] = ()
    cut: frozenset[str] = frozenset()


class Picture(NamedTuple):
    """What the explorer draws for one state."""

    model: torch.nn.Module           # the cached net, its skip gates set for the state
    profile: dict[str, float]        # per-layer gradient norm at initialization
    cut: list[str]                   # blocks drawn with their skip cut
    clickable: list[str]             # blocks a click may cut (none when the gate is 0)


def model_for(state: ExplorerState) -> torch.nn.Module:
    """The cached network of `state`, its skip gates set: the global gate, then 0 for the
    stages switched off and the blocks cut (of this net: a cut at another depth is ignored)."""
    model = cached_model(state.kind, state.depth, state.norm, state.init, state.block,
                         state.preact)
    set_skip(model, state.skip)
    cut = sorted(state.cut & set(blocks_of(model)))
    if state.skip and (state.stages_off or cut):
        set_skip(model, 0.0, [*state.stages_off, *cut])
    return model


@lru_cache(maxsize=512)
def profile_of(state: ExplorerState) -> dict[str, float]:
    """The gradient profile of `state`'s net on the fixed batch, computed once per state (a
    block cut and restored, or a slider moved back, is answered from here). Read only."""
    return gradient_profile(model_for(state), *explorer_batch("cifar" if state.kind == "cifar"
                                                              else "mlp"))


def picture(state: ExplorerState) -> Picture:
    """State -> what to draw: the net (its gates set for `state`), its gradient profile, and
    which blocks of the strip are cut and clickable."""
    model = model_for(state)
    profile = profile_of(state)
    blocks = blocks_of(model)
    return Picture(model, profile, [n for n, b in blocks.items() if b.skip == 0],
                   list(blocks) if state.skip else [])


class Explorer:
    """Gradient-flow explorer: controls and the network strip -> per-layer gradient norms at
    initialization, per block on the strip and per layer in the profile below it."""

    def __init__(self):
        self._make_controls()
        self.cut: set[str] = set()          # blocks whose skip the student cut on the strip
        self.quiet = False                  # True while `quietly` sets several controls
        self.strip = NetworkStrip(self.on_block_click)
        state = self.state()
        self._enable_controls(state)
        self.shown = self.previous = picture(state)
        # build the figures with their data, then wrap them (Voilà drops earlier changes)
        values = self._draw_strip(self.shown)
        profiles = {"previous setting": self.shown.profile, "this network": self.shown.profile}
        figure = explorer_figure(self.strip.cells, values, self.strip.cell_width, profiles)
        figure.update_traces(selector=0, line=dict(color="#bbbbbb", dash="dot"))
        self.figure = go.FigureWidget(figure)
        self.figure.add_class("profile-plot")
        self.readout.value = _readout(self.shown.profile)
        self._observe()
        # build the other depths now, so the first move of the depth slider is quick too. Not a
        # daemon: at exit Python waits for it (a model or two) instead of killing it mid-build.
        self.warm_thread = threading.Thread(target=self.warm_cache, name="explorer warm-up")
        self.warm_thread.start()
        self.widget = W.VBox([
            W.HTML("<b>Gradient-flow explorer.</b> How large is the gradient at each layer of "
                   "a freshly initialized network? Pick a preset, move the sliders, or click "
                   "a block of the strip to cut its skip connection."),
            self._presets(),
            W.HBox([W.VBox([self.kind, self.depth, self.skip]),
                    W.VBox([self.norm, self.init, self.block, self.preact, self.stages])]),
            self.readout,
            W.HTML("<span style='color:#444'>The network, input on the left: one cell per "
                   "residual block, coloured by its gradient norm. ✂ = skip cut.</span>"),
            self.strip.widget, self.figure])

    def snapshot(self, previous: bool = False) -> list:
        """What the explorer shows now, for a page without a kernel: the readout, the net
        coloured by its blocks' gradient norms (a CIFAR net), and the per-layer profile (with
        `previous`, the setting before the last change beside it, as the live figure has)."""
        text = html_text(self.readout.value)
        pictures: list = [text]
        model, profile = self.shown.model, self.shown.profile
        if isinstance(model, ResNet):
            cells = self.strip.cells                   # the strip shows self.shown
            colours = {c.name: norm_colour(v) for c, v in
                       zip(cells, cell_norms(cells, profile), strict=True)}
            size = explorer_batch("cifar")[0].shape
            pictures.append(draw_network(model, (1, *size[1:]), block_colours=colours,
                                         title="the network, each block coloured by its "
                                               "gradient norm"))
        profiles = {"previous setting": self.previous.profile} if previous else {}
        pictures.append(plot_profile({**profiles, "this network": profile},
                                     title=text.split(":")[0]))
        return pictures

    def _make_controls(self) -> None:
        self.kind = labelled("network", "Convolutional CIFAR net or a deep fully connected net",
                             W.Dropdown(options=list(KINDS), value=START["kind"]))
        self.depth = labelled("depth (layers)", "Layers: 6n+2 (basic blocks) or 9n+2 (bottleneck)",
                              W.SelectionSlider(options=DEPTHS, value=START["depth"],
                                                continuous_update=False))
        self.skip = labelled("skip gate", "0 = plain network (F(x) only), 1 = ResNet (F(x) + x)",
                             W.FloatSlider(value=START["skip"], min=0.0, max=1.0, step=0.05,
                                           continuous_update=False, readout_format=".2f"))
        self.norm = labelled("BatchNorm", "Normalize each conv layer's output (BatchNorm)",
                             W.Checkbox(value=START["norm"], indent=False))
        self.init = labelled("init", "He (kaiming) init or PyTorch's default init",
                             W.Dropdown(options=[("He (kaiming)", "he"),
                                                 ("PyTorch default", "default")],
                                        value=START["init"]))
        self.block = labelled("block", "Basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1)",
                              W.Dropdown(options=[("basic", "basic"), ("bottleneck", "bottleneck")],
                                         value=START["block"]))
        self.preact = labelled("pre-activation", "He et al. 2016: BN and ReLU before each conv",
                               W.Checkbox(value=START["preact"], indent=False))
        self.stages = W.HBox([W.ToggleButton(value=True, description=f"{stage_name(s)} skips",
                                             tooltip=f"skip connections of {s} on/off")
                              for s in STAGES])
        self.readout = W.HTML()

    def _presets(self) -> W.Widget:
        cards = []
        for name, (line, _) in PRESETS.items():
            button = W.Button(description=name, tooltip=f"Set every control: {line}",
                              layout=W.Layout(width="248px", padding="0 4px"))
            button.style.font_size = "12px"
            button.on_click(lambda _, n=name: self.apply_preset(n))
            cards.append(W.VBox([button, W.HTML(f"<div style='font-size:11px;color:#444;"
                                                f"width:244px;line-height:1.25'>{line}</div>")],
                                layout=W.Layout(flex="0 0 auto", width="252px")))
        return W.HBox(cards, layout=W.Layout(flex_flow="row wrap"))   # a narrow page: 2 rows

    def _observe(self) -> None:
        self.block.observe(self.on_block_type, names="value")
        for w in (self.kind, self.depth, self.skip, self.norm, self.init, self.preact,
                  *self.stages.children):
            w.observe(self.on_change, names="value")

    def controls(self) -> dict:
        """The current settings, in the form a preset gives them."""
        return dict(kind=self.kind.value, depth=self.depth.value, skip=self.skip.value,
                    norm=self.norm.value, init=self.init.value, block=self.block.value,
                    preact=self.preact.value)

    def state(self) -> ExplorerState:
        """The widgets' values and the strip's cuts, as a state."""
        kind = KINDS[self.kind.value]
        off = tuple(s for s, t in zip(STAGES, self.stages.children, strict=True)
                    if kind == "cifar" and not t.value)
        return ExplorerState(kind, self.depth.value, self.skip.value, self.norm.value,
                             self.init.value, self.block.value, self.preact.value, off,
                             frozenset(self.cut))

    def _enable_controls(self, state: ExplorerState) -> None:
        """Grey out what does not apply: the CIFAR-only switches for an MLP, and the stage
        toggles when every skip is off anyway."""
        cifar = state.kind == "cifar"
        for w in (self.norm, self.block, self.preact):
            w.disabled = not cifar
        for stage, t in zip(STAGES, self.stages.children, strict=True):
            t.disabled = not cifar or state.skip == 0
            on = t.value and not t.disabled
            t.description = f"{stage_name(stage)} skips: {'on' if on else 'off'}"
            t.button_style, t.icon = ("info", "check") if on else ("", "times")

    def _draw_strip(self, shown: Picture) -> list[float]:
        return self.strip.show(shown.model, shown.profile, shown.cut, shown.clickable)

    def warm_cache(self) -> None:
        """Build the nets of every depth with the current settings: the same cache keys that
        `model_for` asks for, so none of this work is thrown away."""
        norm, init, block, preact = (self.norm.value, self.init.value, self.block.value,
                                     self.preact.value)
        for depth in BOTTLENECK_DEPTHS if block == "bottleneck" else DEPTHS:
            cached_model("cifar", depth, norm, init, block, preact)

    def on_block_click(self, name: str) -> None:
        """The strip: one click cuts a block's skip, the next restores it."""
        self.cut ^= {name}
        self.on_change()

    def on_block_type(self, change) -> None:
        with quietly(self):                # one redraw for the whole swap, not one per step
            snap_depth(self.depth, change["new"])
        self.on_change()

    def apply_preset(self, name: str) -> None:
        """Set every control at once (one redraw), and restore every skip on the strip."""
        settings = PRESETS[name][1]
        with quietly(self):
            self.cut.clear()
            for t in self.stages.children:
                t.value = True
            for key in ("kind", "block", "depth", "skip", "norm", "init", "preact"):
                getattr(self, key).value = settings[key]
        self.on_change()

    def on_change(self, change=None) -> None:
        if self.quiet:
            return
        start = time.perf_counter()
        state = self.state()
        self._enable_controls(state)
        try:
            shown = picture(state)
            values = self._draw_strip(shown)
        except Exception as err:           # show it; never kill the kernel
            self.readout.value = f"<span style='color:#c00'>Error: {err}</span>"
            return
        self.cut &= set(blocks_of(shown.model))       # a new depth: forget cuts that are gone
        update_profile(self.figure, {"previous setting": self.shown.profile,
                                     "this network": shown.profile})
        update_strip_figure(self.figure, self.strip.cells, values, self.strip.cell_width)
        self.previous, self.shown = self.shown, shown
        self.readout.value = _readout(shown.profile, time.perf_counter() - start)
