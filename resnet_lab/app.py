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
"""

from __future__ import annotations

import io
import threading
import time
import traceback
from collections.abc import Callable, Collection, Mapping
from contextlib import ExitStack, contextmanager
from functools import lru_cache

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import torch

from . import data as datasets
from .blocks import Bottleneck
from .checks import check_choice, depths
from .devices import pick_device
from .diagrams import Cell, cell_norms, draw_network, norm_colour, strip_cells, text_colour
from .ensembles import deletable_blocks, without_block
from .experiments import median_ms
from .hooks import first_last_ratio, gradient_profile, regime
from .models import (
    blocks_of,
    build_seeded,
    cifar_resnet,
    complexity,
    deep_mlp,
    initialize,
    set_skip,
)
from .plots import (
    STRIP_LEFT,
    STRIP_WIDTH,
    explorer_figure,
    lab_figure,
    show_empty,
    traces_of,
    update_curves,
    update_heatmap,
    update_profile,
    update_strip_figure,
)
from .train import Callback, Recipe, Run, compare, evaluate

DEPTHS = depths("basic")                   # 6n+2: 8, 14, ..., 110 (basic blocks, the MLP)
BOTTLENECK_DEPTHS = depths("bottleneck")   # 9n+2: 11, 20, ..., 110
SEED = 0                                   # every net the app builds starts from these weights
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


@lru_cache(maxsize=48)
def cached_model(kind: str, depth: int, norm: bool, init: str, block: str, preact: bool
                 ) -> torch.nn.Module:
    """Build (once) the network the explorer shows; the skip gates are set per call."""
    if kind == "cifar":
        return cifar_resnet(depth, norm=norm, init=init, block=block, preact=preact, seed=SEED)
    return deep_mlp(depth, width=64, activation=kind, skip=1.0, init=init, seed=SEED)


@lru_cache(maxsize=2)
def explorer_batch(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A small fixed batch: 8 synthetic 16x16 images, or 64 random vectors for the MLP."""
    if kind == "cifar":
        d = datasets.synthetic(8, 1, size=16, seed=0)
        return d.x_train, d.y_train
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 64, generator=g), torch.randint(0, 10, (64,), generator=g)


def _label(text: str, tip: str, widget: W.Widget) -> W.Widget:
    widget.description = text
    widget.tooltip = tip
    widget.style = {"description_width": "120px"}
    return widget


@contextmanager
def quietly(panel):
    """Change several of `panel`'s controls with its redraws held back (`panel.quiet`)."""
    panel.quiet = True
    try:
        yield panel
    finally:
        panel.quiet = False


def snap_depth(slider: W.SelectionSlider, block: str) -> None:
    """Give a depth slider the depths of `block` (6n+2 basic, 9n+2 bottleneck), at the one
    nearest its current value."""
    options = BOTTLENECK_DEPTHS if block == "bottleneck" else DEPTHS
    nearest = min(options, key=lambda d: abs(d - slider.value))
    slider.options = options
    slider.value = nearest


def _readout(profile: Mapping[str, float], seconds: float | None = None) -> str:
    """The explorer's one line: ratio, regime word, layer count and time."""
    ratio, word = first_last_ratio(profile), regime(profile)
    took = f" &middot; {1000 * seconds:.0f} ms" if seconds is not None else ""
    return (f"first layer / last layer gradient norm = <b>{ratio:.3g}</b>: "
            f"<b class='regime' style='color:{REGIME_COLOURS[word]}'>{word}</b>"
            f" <span style='color:#666'>({len(profile)} layers{took})</span>")


class NetworkStrip:
    """A network drawn as a row of cells — stem, one button per residual block, head —
    coloured by gradient norm on the shared log scale (`diagrams.norm_colour`).

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
        return max(14, min(48, STRIP_WIDTH // max(len(self.cells), 1)))

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

    def _paint(self, button: W.Button, cell: Cell, value: float | None, marked: bool,
               clickable: bool) -> None:
        colour = norm_colour(value) if value is not None else "#e6e6e6"
        button.style.button_color = colour
        button.style.text_color = text_colour(colour)
        button.style.font_size = "11px"
        ends = {"stem": "in", "head": "out"} if self.cell_width >= 30 else {}
        button.description = self.mark if marked else ends.get(cell.kind, "")
        button.layout.border = "2px dashed #000" if marked else "1px solid #555"
        button.disabled = not clickable
        norm = f"gradient norm {value:.2g}" if value is not None else "no gradient yet"
        state = f": {self.marked_text if marked else self.unmarked_text}" \
            if cell.kind == "block" else ""
        hint = f" Click to {self.action}." if clickable else ""
        button.tooltip = f"{cell.name} ({cell.label}){state}; {norm}.{hint}"
        (button.add_class if marked else button.remove_class)("strip-marked")


class Explorer:
    """Gradient-flow explorer: controls and the network strip -> per-layer gradient norms at
    initialization, per block on the strip and per layer in the profile below it."""

    def __init__(self):
        self._make_controls()
        self.cut: set[str] = set()          # blocks whose skip the student cut on the strip
        self.quiet = False
        self.last: dict[str, float] = {}
        self.strip = NetworkStrip(self.on_block_click)
        profile = self.compute()
        # build the figures with their data, then wrap them (Voilà drops earlier changes)
        values = self._draw_strip(profile)
        figure = explorer_figure(self.strip.cells, values, self.strip.cell_width,
                                 {"previous setting": profile, "this network": profile})
        figure.update_traces(selector=0, line=dict(color="#bbbbbb", dash="dot"))
        self.figure = go.FigureWidget(figure)
        self.figure.add_class("profile-plot")
        self.last = profile
        self.readout.value = _readout(profile)
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

    def _make_controls(self) -> None:
        self.kind = _label("network", "Convolutional CIFAR net or a deep fully connected net",
                           W.Dropdown(options=list(KINDS), value=BASE["kind"]))
        self.depth = _label("depth (layers)", "Layers: 6n+2 (basic blocks) or 9n+2 (bottleneck)",
                            W.SelectionSlider(options=DEPTHS, value=BASE["depth"],
                                              continuous_update=False))
        self.skip = _label("skip gate", "0 = plain network (F(x) only), 1 = ResNet (F(x) + x)",
                           W.FloatSlider(value=BASE["skip"], min=0.0, max=1.0, step=0.05,
                                         continuous_update=False, readout_format=".2f"))
        self.norm = _label("BatchNorm", "Normalize each conv layer's output (BatchNorm)",
                           W.Checkbox(value=BASE["norm"], indent=False))
        self.init = _label("init", "He (kaiming) init or PyTorch's default init",
                           W.Dropdown(options=[("He (kaiming)", "he"),
                                               ("PyTorch default", "default")],
                                      value=BASE["init"]))
        self.block = _label("block", "Basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1)",
                            W.Dropdown(options=[("basic", "basic"), ("bottleneck", "bottleneck")],
                                       value=BASE["block"]))
        self.preact = _label("pre-activation", "He et al. 2016: BN and ReLU before each conv",
                             W.Checkbox(value=BASE["preact"], indent=False))
        self.stages = W.HBox([W.ToggleButton(value=True, description=f"stage {i + 1} skips",
                                             tooltip=f"skip connections of {s} on/off")
                              for i, s in enumerate(STAGES)])
        self.readout = W.HTML()

    def _presets(self) -> W.Widget:
        cards = []
        for name, (line, _) in PRESETS.items():
            button = W.Button(description=name, tooltip=f"Set every control: {line}",
                              layout=W.Layout(width="228px", padding="0 4px"))
            button.style.font_size = "12px"
            button.on_click(lambda _, n=name: self.apply_preset(n))
            cards.append(W.VBox([button, W.HTML(f"<div style='font-size:11px;color:#444;"
                                                f"width:224px;line-height:1.25'>{line}</div>")]))
        return W.HBox(cards)

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

    def model(self) -> torch.nn.Module:
        """The cached network for the current settings, its skip gates set: the global gate,
        the stages switched off, and the blocks cut on the strip."""
        kind = KINDS[self.kind.value]
        model = cached_model(kind, self.depth.value, self.norm.value, self.init.value,
                             self.block.value, self.preact.value)
        set_skip(model, self.skip.value)
        self.cut &= set(blocks_of(model))          # a new depth: forget cuts that are gone
        off = [s for s, t in zip(STAGES, self.stages.children, strict=True)
               if kind == "cifar" and not t.value]
        if self.skip.value and (off or self.cut):
            set_skip(model, 0.0, off + sorted(self.cut))
        return model

    def compute(self) -> dict[str, float]:
        """The profile for the current control values (cached model, fixed batch)."""
        cifar = KINDS[self.kind.value] == "cifar"
        for w in (self.norm, self.block, self.preact):
            w.disabled = not cifar
        for t in self.stages.children:   # a stage's skips can only be switched off if they are on
            t.disabled = not cifar or self.skip.value == 0
        self.current = self.model()
        return gradient_profile(self.current, *explorer_batch("cifar" if cifar else "mlp"))

    def _draw_strip(self, profile: Mapping[str, float]) -> list[float]:
        blocks = blocks_of(self.current)
        cut = [n for n, b in blocks.items() if b.skip == 0]
        clickable = list(blocks) if self.skip.value else []
        return self.strip.show(self.current, profile, cut, clickable)

    def warm_cache(self) -> None:
        """Build the nets of every depth with the current settings: the same cache keys that
        `compute` asks for, so none of this work is thrown away."""
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
        try:
            profile = self.compute()
            values = self._draw_strip(profile)
        except Exception as err:           # show it; never kill the kernel
            self.readout.value = f"<span style='color:#c00'>Error: {err}</span>"
            return
        update_profile(self.figure, {"previous setting": self.last or profile,
                                     "this network": profile})
        update_strip_figure(self.figure, self.strip.cells, values, self.strip.cell_width)
        self.last = profile
        self.readout.value = _readout(profile, time.perf_counter() - start)


class LivePlots(Callback):
    """Redraws the training lab's figures and strips while training runs, throttled."""

    def __init__(self, lab: TrainingLab, redraw_seconds: float = 0.7):
        self.lab, self.redraw_seconds = lab, redraw_seconds
        self.last = 0.0
        self.drawing = 0.0

    def on_step(self, run: Run) -> None:
        now = time.perf_counter()
        # wait at least redraw_seconds, and 30x the last draw's cost (drawing stays < ~3%)
        if self.lab.live.value and now - self.last >= max(self.redraw_seconds,
                                                          30 * self.drawing):
            self.draw(run)
            self.drawing = time.perf_counter() - now
            self.last = time.perf_counter()

    def on_end(self, run: Run) -> None:
        self.draw(run)

    def draw(self, run: Run) -> None:
        run.flush()                       # the rows still on the device, in one copy
        update_curves(self.lab.figure, run.histories)
        update_heatmap(self.lab.figure, {n: (h.layers, np.array(h.grad_step),
                                             np.array(h.grad_norms).reshape(-1, len(h.layers)))
                                         for n, h in run.histories.items()})
        for name, h in run.histories.items():
            latest = dict(zip(h.layers, h.grad_norms[-1], strict=True)) if h.grad_norms else None
            self.lab.lesion.strips[name].show(run.models[name], latest, (), ())
        self.lab.status.value = (f"step {run.step}"
                                 f"{'/' + str(run.max_steps) if run.max_steps else ''}"
                                 f" &middot; {run.steps_per_second:.1f} steps/s &middot; "
                                 f"device {run.device}")


class LesionView:
    """Each trained net drawn as a strip; after training a click deletes a block (its output
    becomes its input, Veit et al. 2016) and the net's test error is measured at once.

    A table keeps "deleted block -> test error" for every net: residual nets lose little,
    plain nets fall towards chance, because every path of a plain net runs through every block.
    """

    def __init__(self, test_samples: int = 2000):
        self.test_samples = test_samples
        self.strips: dict[str, NetworkStrip] = {}
        self.models: dict[str, torch.nn.Module] = {}
        self.deleted: dict[str, set[str]] = {}
        self.results: dict[str, dict[str, float]] = {}     # deleted block -> net -> error
        self.test: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_norms: dict[str, dict[str, float]] = {}
        self.readout = W.HTML()
        self.table = W.HTML()
        self.rows = W.VBox()
        self.widget = W.VBox([self.rows, self.readout, self.table])

    def prepare(self, models: dict[str, torch.nn.Module]) -> None:
        """A strip per net (not clickable while it trains), and no lesion results yet."""
        self.models, self.test, self.results, self.last_norms = models, None, {}, {}
        self.deleted = {name: set() for name in models}
        self.strips = {name: NetworkStrip(lambda block, n=name: self.toggle(n, block),
                                          mark="✕", marked_text="deleted",
                                          unmarked_text="in place",
                                          action="delete it or put it back")
                       for name in models}
        for name, model in models.items():
            self.strips[name].show(model, None, (), ())
        self.rows.children = [W.VBox([W.HTML(f"<b>{name}</b>"), strip.widget])
                              for name, strip in self.strips.items()]
        self.readout.value = self.table.value = ""

    def start(self, data: datasets.Dataset, last_norms: dict[str, dict[str, float]]) -> None:
        """Training is over: blocks that keep the shape become clickable. `last_norms` (net ->
        layer -> gradient norm at the last step) keeps each strip in its training colours."""
        self.last_norms = last_norms
        self.test = data.x_test[:self.test_samples], data.y_test[:self.test_samples]
        self.results["none"] = {name: self.error(name) for name in self.models}
        for name in self.models:
            self.redraw(name)
        self.readout.value = ("<b>Lesion view:</b> click a block of a trained net to delete "
                              "it; click again to put it back.")
        self.render_table()

    def error(self, name: str) -> float:
        """Test error of net `name` with its deleted blocks taken out."""
        model = self.models[name]
        with ExitStack() as stack:
            for block in self.deleted[name]:
                stack.enter_context(without_block(model, block))
            return evaluate(model, *self.test)[1]

    def toggle(self, name: str, block: str) -> None:
        if self.test is None:
            return
        self.deleted[name] ^= {block}
        error = self.error(name)
        if len(self.deleted[name]) == 1:
            self.results.setdefault(next(iter(self.deleted[name])), {})[name] = error
        gone = ", ".join(sorted(self.deleted[name])) or "none"
        self.readout.value = (f"<b>{name}</b> without <b>{gone}</b>: test error "
                              f"<b class='lesion-error'>{100 * error:.1f}%</b> (intact: "
                              f"{100 * self.results['none'][name]:.1f}%)")
        self.redraw(name)
        self.render_table()

    def redraw(self, name: str) -> None:
        """The net's strip in its last training colours, deleted blocks marked."""
        model = self.models[name]
        clickable = deletable_blocks(model) if self.test is not None else ()
        self.strips[name].show(model, self.last_norms.get(name), self.deleted[name], clickable)

    def render_table(self) -> None:
        names = list(self.models)
        head = "".join(f"<th style='padding:0 10px'>{n}</th>" for n in names)
        rows = "".join(
            f"<tr><td>{block}</td>" + "".join(
                f"<td style='text-align:right;padding:0 10px'>"
                f"{'' if n not in errors else f'{100 * errors[n]:.1f}%'}</td>" for n in names)
            + "</tr>" for block, errors in self.results.items())
        self.table.value = (f"<table class='lesion-table'><tr><th>deleted block</th>{head}</tr>"
                            f"{rows}</table>")


class TrainingLab:
    """Train plain and residual nets side by side; watch loss, error and gradient norms, then
    delete blocks of the trained nets in the lesion view."""

    def __init__(self, redraw_seconds: float = 0.7, dataset: str = "synthetic"):
        check_choice("dataset", dataset, datasets.DATASETS)
        self._make_controls(dataset)
        self.size, self.width = (32, 16) if pick_device().type == "cuda" else (16, 4)
        self.figure = go.FigureWidget(self._empty(lab_figure(["plain", "ResNet"])))
        self.figure.add_class("lab-plot")
        self.lesion = LesionView()
        self.live_plots = LivePlots(self, redraw_seconds)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.histories: dict = {}
        self.models: dict = {}
        self.train_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop.set())
        self.widget = W.VBox([
            W.HTML("<b>Training lab.</b> The same batches go to every network; curves grow "
                   "together. Dashed = plain."),
            W.HBox([W.VBox([self.dataset, self.depth, self.steps, self.lr]),
                    W.VBox([self.plain, self.residual, self.norm, self.live])]),
            W.HBox([self.train_button, self.stop_button]), self.status, self.figure,
            self.lesion.widget])

    @staticmethod
    def _empty(figure: go.Figure) -> go.Figure:
        show_empty(figure, "Press Train: the curves grow here as the networks learn.")
        return figure

    def _make_controls(self, dataset: str) -> None:
        names = {"synthetic": "synthetic (built in)", "fashion_mnist": "Fashion-MNIST",
                 "cifar10": "CIFAR-10 (download)"}
        self.dataset = _label("dataset", "The built-in synthetic set needs no download",
                              W.Dropdown(options=[(v, k) for k, v in names.items()],
                                         value=dataset))
        self.depth = _label("depth (layers)", "Both networks get this depth (6n+2)",
                            W.SelectionSlider(options=DEPTHS, value=56))
        self.steps = _label("steps", "Training steps (batches of 128) for every network",
                            W.IntSlider(value=300, min=20, max=3000, step=20))
        self.plain = _label("plain", "Train the plain network (skips off)",
                            W.Checkbox(value=True, indent=False))
        self.residual = _label("residual", "Train the ResNet (skips on)",
                               W.Checkbox(value=True, indent=False))
        self.norm = _label("BatchNorm", "BatchNorm in both networks",
                           W.Checkbox(value=True, indent=False))
        self.live = _label("live plots", "Redraw the plots while training (off: at the end)",
                           W.Checkbox(value=True, indent=False))
        self.lr = _label("learning rate", "SGD learning rate (constant, momentum 0.9)",
                         W.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.25))
        self.train_button = W.Button(description="Train", button_style="success", icon="play",
                                     tooltip="Train the chosen networks side by side")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    tooltip="Stop at the next step; keeps everything so far",
                                    disabled=True)
        self.status = W.HTML(
            f"Press <b>Train</b>: plain-56 vs ResNet-56 on {names[dataset]}. After training, "
            "click a block of a trained net to <b>delete</b> it and see its test error (the "
            "lesion view, below).")

    def configs(self) -> dict[str, float]:
        chosen = {}
        if self.plain.value:
            chosen[f"plain-{self.depth.value}"] = 0.0
        if self.residual.value:
            chosen[f"ResNet-{self.depth.value}"] = 1.0
        return chosen

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        configs = self.configs()
        if not configs:
            self.status.value = "<span style='color:#c00'>Choose plain, residual or both.</span>"
            return
        self.stop.clear()
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "loading data and building the networks ..."
        self.thread = threading.Thread(target=self._train, args=(configs,), daemon=True)
        self.thread.start()

    def _build(self, configs: dict[str, float]) -> datasets.Dataset:
        """Load the data, build the nets (same seed: the same initial weights) and name the
        traces after them."""
        kwargs = {"size": self.size}
        if self.dataset.value == "synthetic":
            kwargs["n_train"] = 20_000
        data = datasets.load(self.dataset.value, **kwargs)
        self.models = {n: cifar_resnet(self.depth.value, width=self.width, skip=skip,
                                       norm=self.norm.value, in_channels=data.shape[0],
                                       num_classes=len(data.classes), seed=SEED)
                       for n, skip in configs.items()}
        self.lesion.prepare(self.models)
        names = list(configs)
        with self.figure.batch_update():
            for i, trace in enumerate(traces_of(self.figure, "scatter")):
                trace.visible = i // 2 < len(names)
                trace.name = names[min(i // 2, len(names) - 1)]
            for i, trace in enumerate(traces_of(self.figure, "heatmap")):
                trace.visible = i < len(names)
            for i, n in enumerate(names):
                self.figure.layout.annotations[2 + i].text = n   # after the two curve titles
        return data

    def _train(self, configs: dict[str, float]) -> None:
        try:
            data = self._build(configs)
            recipe = Recipe("lab", lr=self.lr.value, weight_decay=5e-4, schedule="constant")
            self.histories = compare(self.models, data, steps=self.steps.value, recipe=recipe,
                                     callbacks=[self.live_plots], stop=self.stop)
            words = [f"{n}: {h.status}, final loss {h.final_train_loss():.3f}"
                     + (f" &mdash; {h.message}" if h.status == "diverged" else "")
                     for n, h in self.histories.items()]
            self.status.value += "<br>" + "<br>".join(words)
            self.lesion.start(data, {n: dict(zip(h.layers, h.grad_norms[-1], strict=True))
                                     for n, h in self.histories.items() if h.grad_norms})
        except Exception as err:           # show it in the page; the kernel lives on
            self.status.value = (f"<span style='color:#c00'>Error: {err}</span>"
                                 f"<pre style='font-size:10px'>{traceback.format_exc(limit=3)}"
                                 "</pre>")
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True


# ---------------------------------------------------------------------------------------------
# The lessons' own controls (lessons 3 and 4); lessons 1 and 2 use the Explorer and TrainingLab


def _png(figure) -> bytes:
    """A matplotlib figure as PNG bytes (for a W.Image), the figure closed afterwards."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


class ArchitectureExplorer:
    """Lesson 3: a CIFAR net's block type and depth -> its parameters, MACs and drawing."""

    def __init__(self, width: int = 16, size: int = 32):
        self.width, self.size = width, size
        self.block = _label("block", "Basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1)",
                            W.Dropdown(options=["basic", "bottleneck"], value="basic"))
        self.depth = _label("depth (layers)", "6n+2 for basic blocks, 9n+2 for bottlenecks",
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
        model = cifar_resnet(self.depth.value, block=self.block.value, width=self.width,
                             seed=SEED)
        params, macs = complexity(model, (1, 3, self.size, self.size))
        blocks = len(blocks_of(model))
        self.readout.value = (f"<b>{self.block.value} blocks, {self.depth.value} layers</b>: "
                              f"{blocks} blocks, <b class='params'>{params:,}</b> parameters, "
                              f"<b>{macs / 1e6:.1f}</b> MMACs per {self.size}×{self.size} image")
        self.picture.value = _png(draw_network(model, (1, 3, self.size, self.size)))


XIE_TABLE_2 = {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}   # cardinality C -> width d at ResNet-50's cost


class CardinalityExplorer:
    """Lesson 4: cardinality C and width d at a fixed budget (Xie et al. Table 2) -> the
    stage-1 block's parameters, MACs and measured forward time."""

    def __init__(self, size: int = 56, batch: int = 8):
        self.size, self.batch = size, batch
        self.cardinality = _label("C × d", "Paths (cardinality) × channels per path; the "
                                  "complexity stays that of ResNet-50's block",
                                  W.SelectionSlider(options=[(f"{c} × {d}d", c) for c, d in
                                                             XIE_TABLE_2.items()], value=32,
                                                    continuous_update=False))
        self.readout = W.HTML()
        self.cardinality.observe(lambda change: self.update(), names="value")
        self.update()
        self.widget = W.VBox([self.cardinality, self.readout])

    def update(self) -> None:
        c = self.cardinality.value
        d = XIE_TABLE_2[c]
        block = build_seeded(lambda: Bottleneck(256, 64, groups=c, base_width=d),
                             lambda m, g: initialize(m, generator=g), SEED).eval()
        params, macs = complexity(block, (1, 256, self.size, self.size))
        x = torch.randn(self.batch, 256, self.size, self.size,
                        generator=torch.Generator().manual_seed(SEED))
        ms = median_ms(lambda: block(x), repeats=5)
        self.readout.value = (
            f"<b>C = {c}, d = {d}</b>: 1×1 256→{c * d}, 3×3 {c * d}→{c * d} in {c} "
            f"group{'s' if c > 1 else ''}, "
            f"1×1 {c * d}→256: <b class='params'>{params:,}</b> parameters, "
            f"<b>{macs / 1e6:.0f}</b> MMACs per {self.size}×{self.size} picture, "
            f"<b>{ms:.1f} ms</b> for a batch of {self.batch} (median of 5)")


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
