"""The widget app: a gradient-flow explorer and a training lab (JupyterLab or Voilà).

    from resnet_lab.app import app
    app()

Explorer: every control change recomputes the per-layer gradient profile at initialization
(models are cached; changing the skip gate never rebuilds) and redraws it in place.
Training lab: Train runs `train.compare` in a background thread, so Stop stays clickable;
the plots are redrawn at most every `redraw_seconds` and never cost more than a few percent.
"""

from __future__ import annotations

import threading
import time
import traceback
from functools import lru_cache

import ipywidgets as W
import plotly.graph_objects as go
import torch

from . import data as datasets
from .checks import depths
from .devices import pick_device
from .hooks import first_last_ratio, gradient_profile, regime
from .models import cifar_resnet, deep_mlp, set_skip
from .plots import (
    curves_figure,
    heatmap_figure,
    profile_figure,
    update_curves,
    update_heatmap,
    update_profile,
)
from .train import Callback, Recipe, Run, compare

DEPTHS = depths("basic")                   # 6n+2: 8, 14, ..., 110 (basic blocks, the MLP)
BOTTLENECK_DEPTHS = depths("bottleneck")   # 9n+2: 11, 20, ..., 110
SEED = 0                                   # every net the app builds starts from these weights
KINDS = {"CIFAR ResNet (conv)": "cifar", "deep MLP, sigmoid": "sigmoid",
         "deep MLP, tanh": "tanh", "deep MLP, ReLU": "relu"}
STAGES = ("layer1", "layer2", "layer3")


@lru_cache(maxsize=32)
def cached_model(kind: str, depth: int, norm: bool, init: str, block: str) -> torch.nn.Module:
    """Build (once) the network the explorer shows; the skip gates are set per call."""
    if kind == "cifar":
        return cifar_resnet(depth, norm=norm, init=init, block=block, seed=SEED)
    return deep_mlp(depth, width=64, activation=kind, skip=1.0, seed=SEED)


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


class Explorer:
    """Gradient-flow explorer: controls -> per-layer gradient norms at initialization."""

    def __init__(self):
        self.kind = _label("network", "Convolutional CIFAR net or a deep fully connected net",
                           W.Dropdown(options=list(KINDS), value="CIFAR ResNet (conv)"))
        self.depth = _label("depth (layers)", "Layers: 6n+2 (basic blocks) or 9n+2 (bottleneck)",
                            W.SelectionSlider(options=DEPTHS, value=56, continuous_update=False))
        self.skip = _label("skip gate", "0 = plain network (F(x) only), 1 = ResNet (F(x) + x)",
                           W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05,
                                         continuous_update=False, readout_format=".2f"))
        self.norm = _label("BatchNorm", "Normalize each conv layer's output (BatchNorm)",
                           W.Checkbox(value=True, indent=False))
        self.init = _label("init", "He (kaiming) init or PyTorch's default init",
                           W.Dropdown(options=[("He (kaiming)", "he"),
                                               ("PyTorch default", "default")], value="he"))
        self.block = _label("block", "Basic (two 3x3 convs) or bottleneck (1x1, 3x3, 1x1)",
                            W.Dropdown(options=[("basic", "basic"), ("bottleneck", "bottleneck")],
                                       value="basic"))
        self.stages = W.HBox([W.ToggleButton(value=True, description=f"stage {i + 1} skips",
                                             tooltip=f"skip connections of {s} on/off")
                              for i, s in enumerate(STAGES)])
        self.readout = W.HTML()
        self.quiet = False
        self.last: dict[str, float] = {}
        self.previous: dict[str, float] = {}
        profile = self.compute()
        # build the figure with its data, then wrap it (Voilà drops earlier widget changes)
        figure = profile_figure({"previous setting": profile, "this network": profile})
        figure.update_traces(selector=0, line=dict(color="#bbbbbb", dash="dot"))
        self.figure = go.FigureWidget(figure)
        self._show(profile)
        self.block.observe(self.on_block, names="value")
        for w in (self.kind, self.depth, self.skip, self.norm, self.init, *self.stages.children):
            w.observe(self.on_change, names="value")
        # build the other depths now, so the first move of the depth slider is quick too. Not a
        # daemon: at exit Python waits for it (a model or two) instead of killing it mid-build.
        self.warm_thread = threading.Thread(target=self.warm_cache, name="explorer warm-up")
        self.warm_thread.start()
        self.widget = W.VBox([
            W.HTML("<b>Gradient-flow explorer.</b> How large is the gradient at each layer of "
                   "a freshly initialized network? Move the sliders."),
            W.HBox([W.VBox([self.kind, self.depth, self.skip]),
                    W.VBox([self.norm, self.init, self.block, self.stages])]),
            self.readout, self.figure])

    def compute(self) -> dict[str, float]:
        """The profile for the current control values (cached model, fixed batch)."""
        kind = KINDS[self.kind.value]
        cifar = kind == "cifar"
        for w in (self.norm, self.init, self.block):
            w.disabled = not cifar
        for t in self.stages.children:   # a stage's skips can only be switched off if they are on
            t.disabled = not cifar or self.skip.value == 0
        model = cached_model(kind, self.depth.value, self.norm.value, self.init.value,
                             self.block.value)
        set_skip(model, self.skip.value)
        if cifar:
            off = [s for s, t in zip(STAGES, self.stages.children, strict=True) if not t.value]
            if off:
                set_skip(model, 0.0, off)
        return gradient_profile(model, *explorer_batch("cifar" if cifar else "mlp"))

    def warm_cache(self) -> None:
        """Build the nets of every depth with the current settings: the same cache keys that
        `compute` asks for, so none of this work is thrown away."""
        norm, init, block = self.norm.value, self.init.value, self.block.value
        for depth in BOTTLENECK_DEPTHS if block == "bottleneck" else DEPTHS:
            cached_model("cifar", depth, norm, init, block)

    def on_block(self, change) -> None:
        """Bottleneck nets have 9n+2 layers: move the depth slider to the nearest such depth."""
        depths = BOTTLENECK_DEPTHS if change["new"] == "bottleneck" else DEPTHS
        nearest = min(depths, key=lambda d: abs(d - self.depth.value))
        self.quiet = True                  # one redraw for the whole swap, not one per step
        try:
            self.depth.options = depths
            self.depth.value = nearest
        finally:
            self.quiet = False
        self.on_change()

    def on_change(self, change=None) -> None:
        if self.quiet:
            return
        start = time.perf_counter()
        try:
            profile = self.compute()
        except Exception as err:           # show it; never kill the kernel
            self.readout.value = f"<span style='color:#c00'>Error: {err}</span>"
            return
        self.previous = self.last
        update_profile(self.figure, {"previous setting": self.previous or profile,
                                     "this network": profile})
        self._show(profile, time.perf_counter() - start)

    def _show(self, profile: dict[str, float], seconds: float | None = None) -> None:
        self.last = profile
        ratio, word = first_last_ratio(profile), regime(profile)
        color = {"healthy": "#2a7", "vanishing": "#c60", "exploding": "#c00",
                 "no gradient": "#888"}[word]
        took = f" &middot; {1000 * seconds:.0f} ms" if seconds is not None else ""
        self.readout.value = (f"first layer / last layer gradient norm = <b>{ratio:.3g}</b>: "
                              f"<b style='color:{color}'>{word}</b>"
                              f" <span style='color:#888'>({len(profile)} layers{took})</span>")


class LivePlots(Callback):
    """Redraws the training lab's figures while training runs, throttled."""

    def __init__(self, lab: TrainingLab, redraw_seconds: float = 0.7):
        self.lab, self.redraw_seconds = lab, redraw_seconds
        self.last = 0.0
        self.drawing = 0.0

    def on_step(self, run: Run) -> None:
        now = time.perf_counter()
        # wait at least redraw_seconds, and 30x the last draw's cost (drawing stays < ~3%)
        if now - self.last >= max(self.redraw_seconds, 30 * self.drawing):
            self.draw(run)
            self.drawing = time.perf_counter() - now
            self.last = time.perf_counter()

    def on_end(self, run: Run) -> None:
        self.draw(run)

    def draw(self, run: Run) -> None:
        update_curves(self.lab.curves, run.histories)
        update_heatmap(self.lab.heatmap, {n: (g.names, g.step_numbers() + 1, g.values())
                                          for n, g in run.norms.items()})
        self.lab.status.value = (f"step {run.step}"
                                 f"{'/' + str(run.max_steps) if run.max_steps else ''}"
                                 f" &middot; {run.steps_per_second:.1f} steps/s &middot; "
                                 f"device {run.device}")


class TrainingLab:
    """Train plain and residual nets side by side; watch loss, error and gradient norms."""

    def __init__(self, redraw_seconds: float = 0.7):
        full = pick_device().type == "cuda"
        self.dataset = _label("dataset", "The built-in synthetic set needs no download",
                              W.Dropdown(options=[("synthetic (built in)", "synthetic"),
                                                  ("Fashion-MNIST", "fashion_mnist"),
                                                  ("CIFAR-10 (download)", "cifar10")],
                                         value="synthetic"))
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
        self.lr = _label("learning rate", "SGD learning rate (constant, momentum 0.9)",
                         W.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.25))
        self.train_button = W.Button(description="Train", button_style="success", icon="play",
                                     tooltip="Train the chosen networks side by side")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    tooltip="Stop at the next step; keeps everything so far",
                                    disabled=True)
        self.status = W.HTML("Press <b>Train</b>: plain-56 vs ResNet-56 on the built-in data.")
        self.size, self.width = (32, 16) if full else (16, 4)
        self.curves = go.FigureWidget(curves_figure(["plain", "ResNet"]))
        self.heatmap = go.FigureWidget(heatmap_figure(["plain", "ResNet"]))
        self.live = LivePlots(self, redraw_seconds)
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
                    W.VBox([self.plain, self.residual, self.norm])]),
            W.HBox([self.train_button, self.stop_button]), self.status, self.curves,
            self.heatmap])

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

    def _train(self, configs: dict[str, float]) -> None:
        try:
            name = self.dataset.value
            kwargs = {"size": self.size}
            if name == "synthetic":
                kwargs["n_train"] = 20_000
            data = datasets.load(name, **kwargs)
            self.models = {n: cifar_resnet(self.depth.value, width=self.width, skip=skip,
                                           norm=self.norm.value, in_channels=data.shape[0],
                                           num_classes=len(data.classes), seed=SEED)
                           for n, skip in configs.items()}
            names = list(configs)
            with self.curves.batch_update(), self.heatmap.batch_update():
                for i, trace in enumerate(self.curves.data):
                    trace.visible = i // 2 < len(names)
                    trace.name = names[min(i // 2, len(names) - 1)]
                for i, trace in enumerate(self.heatmap.data):
                    trace.visible = i < len(names)
                for i, n in enumerate(names):
                    self.heatmap.layout.annotations[i].text = n
            recipe = Recipe("lab", lr=self.lr.value, weight_decay=5e-4, schedule="constant")
            self.histories = compare(self.models, data, steps=self.steps.value, recipe=recipe,
                                     callbacks=[self.live], stop=self.stop)
            words = [f"{n}: {h.status}, final loss {h.final_train_loss():.3f}"
                     + (f" &mdash; {h.message}" if h.status == "diverged" else "")
                     for n, h in self.histories.items()]
            self.status.value += "<br>" + "<br>".join(words)
        except Exception as err:           # show it in the page; the kernel lives on
            self.status.value = (f"<span style='color:#c00'>Error: {err}</span>"
                                 f"<pre style='font-size:10px'>{traceback.format_exc(limit=3)}"
                                 "</pre>")
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True


def app() -> W.Widget:
    """The whole app: the explorer above the training lab."""
    explorer, lab = Explorer(), TrainingLab()
    tabs = W.Tab([explorer.widget, lab.widget])
    tabs.set_title(0, "Explorer")
    tabs.set_title(1, "Training lab")
    tabs.explorer, tabs.lab = explorer, lab
    return tabs
