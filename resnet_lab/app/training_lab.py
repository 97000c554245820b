"""The training lab: plain and residual nets trained side by side in a background thread
(Stop stays clickable), live curves, a layer x step heatmap and each net's strip, then the
lesion view. `LivePlots` is the one path by which the training thread reaches the widgets:
at most every `redraw_seconds`."""

from __future__ import annotations

import html
import math
import threading
import time
import traceback
from collections.abc import Callable

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go

from ..lessons.settings import FULL, QUICK
from ..nets.checks import check_choice
from ..nets.devices import pick_device
from ..nets.models import ResNet, named_net
from ..pictures.diagrams import draw_network
from ..pictures.plots import (
    lab_figure,
    name_runs,
    plot_curves,
    show_empty,
    traces_of,
    update_curves,
    update_heatmap,
)
from ..training import data as datasets
from ..training.callbacks import Callback
from ..training.comparison import between
from ..training.recipes import with_lr
from ..training.run import Run
from ..training.train import compare
from .lesion import LesionView
from .widgets import DEPTHS, SEED, html_text, labelled


def default_dataset() -> str:
    """The lessons' data, Fashion-MNIST, where it is on this machine; else the built-in set."""
    return "fashion_mnist" if datasets.fashion_mnist_here() else "synthetic"


class LivePlots(Callback):
    """The one path from the training thread to the widgets: calls `draw(run)` at most every
    `redraw_seconds` (and no sooner than 30x the last draw's cost, so drawing stays under
    ~3% of the time), while `live()` says so, and once at the end."""

    def __init__(self, draw: Callable[[Run], None], live: Callable[[], bool],
                 redraw_seconds: float = 0.7):
        self.draw, self.live, self.redraw_seconds = draw, live, redraw_seconds
        self.last = -math.inf               # never drawn yet: the first step draws
        self.drawing = 0.0

    def on_step(self, run: Run) -> None:
        now = time.perf_counter()
        if self.live() and now - self.last >= max(self.redraw_seconds, 30 * self.drawing):
            self.draw(run)
            self.drawing = time.perf_counter() - now
            self.last = time.perf_counter()

    def on_end(self, run: Run) -> None:
        self.draw(run)


class TrainingLab:
    """Train plain and residual nets side by side; watch loss, error and gradient norms, then
    delete blocks of the trained nets in the lesion view."""

    def __init__(self, redraw_seconds: float = 0.7, dataset: str | None = None):
        dataset = dataset or default_dataset()
        check_choice("dataset", dataset, datasets.DATASETS)
        self._make_controls(dataset)
        sizes = FULL if pick_device().type == "cuda" else QUICK      # the lessons' sizes
        self.size, self.width = sizes.size, sizes.width
        self.figure = go.FigureWidget(self._empty(lab_figure(["plain", "ResNet"])))
        self.figure.add_class("lab-plot")
        self.lesion = LesionView()
        self.live_plots = LivePlots(self.show_progress, lambda: self.live.value, redraw_seconds)
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
        """Before Train: a line saying so, and each heatmap blank and grey-labelled, so no
        square of colour looks like data (the labels go with the first step's draw)."""
        show_empty(figure, "Press Train: the curves grow here as the networks learn.")
        for trace in traces_of(figure, "heatmap"):
            figure.add_annotation(text="no steps yet", name="empty", showarrow=False,
                                  x=0.5, y=0.5, xref=f"{trace.xaxis} domain",
                                  yref=f"{trace.yaxis} domain", font=dict(color="#999"))
        return figure

    def _make_controls(self, dataset: str) -> None:
        names = {"synthetic": "synthetic (built in)", "fashion_mnist": "Fashion-MNIST",
                 "cifar10": "CIFAR-10 (download)"}
        self.dataset = labelled("dataset", "The built-in synthetic set needs no download",
                                W.Dropdown(options=[(v, k) for k, v in names.items()],
                                           value=dataset))
        self.depth = labelled("depth (layers)", "Both networks get this depth (6n+2)",
                              W.SelectionSlider(options=DEPTHS, value=56))
        self.steps = labelled("steps", "Training steps (batches of 128) for every network",
                              W.IntSlider(value=300, min=20, max=3000, step=20))
        self.plain = labelled("plain", "Train the plain network (skips off)",
                              W.Checkbox(value=True, indent=False))
        self.residual = labelled("residual", "Train the ResNet (skips on)",
                                 W.Checkbox(value=True, indent=False))
        self.norm = labelled("BatchNorm", "BatchNorm in both networks",
                             W.Checkbox(value=True, indent=False))
        self.live = labelled("live plots", "Redraw the plots while training (off: at the end)",
                             W.Checkbox(value=True, indent=False))
        self.lr = labelled("learning rate", "SGD learning rate (constant, momentum 0.9)",
                           W.FloatLogSlider(value=0.1, base=10, min=-3, max=0, step=0.25))
        self.train_button = W.Button(description="Train", button_style="success", icon="play",
                                     tooltip="Train the chosen networks side by side")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop",
                                    tooltip="Stop at the next step; keeps everything so far",
                                    disabled=True)
        self.status = W.HTML()
        self.show_ready()
        for control in (self.dataset, self.depth, self.plain, self.residual):
            control.observe(lambda _: self.thread is None and self.show_ready(), names="value")

    def show_ready(self) -> None:
        """Before the first Train: what Train will do, and what a click does afterwards."""
        nets = " vs ".join(self.chosen()) or "nothing (choose plain, residual or both)"
        data = self.dataset.label
        if self.dataset.value == "synthetic" and not datasets.fashion_mnist_here():
            data += " (Fashion-MNIST, the lessons' data, is not on this machine)"
        self.status.value = (
            f"Press <b>Train</b>: {nets} on {data}. After training, click a block of a "
            "trained net to <b>delete</b> it and see its test error (the lesion view, below).")

    def snapshot(self) -> list:
        """What the lab shows, for a page without a kernel: after training, the status line,
        the curves and the lesion view; before, the settings and the nets Train will build."""
        if self.histories:
            return [html_text(self.status.value.replace("<br>", "\n")),   # a line per net
                    plot_curves(self.histories),
                    *self.lesion.snapshot()]
        settings = (f"dataset {self.dataset.value}, depth {self.depth.value}, "
                    f"{self.steps.value} steps, learning rate {self.lr.value:g}")
        size = (1, datasets.CHANNELS[self.dataset.value], self.size, self.size)
        nets = self.nets(self.chosen(), in_channels=size[1], num_classes=10)
        return [f"Training lab: {settings}. {html_text(self.status.value)}",
                *(draw_network(net, size, title=f"{name}, as Train builds it"
                                                + ("" if net.config.skip else
                                                   ": every skip cut (dashed)"))
                  for name, net in nets.items())]

    def nets(self, names: list[str], in_channels: int, num_classes: int) -> dict[str, ResNet]:
        """The nets the controls ask for, by name: one seed, so the same initial weights."""
        return {name: named_net(name, width=self.width, norm=self.norm.value, seed=SEED,
                                in_channels=in_channels, num_classes=num_classes)
                for name in names}

    def chosen(self) -> list[str]:
        """The names of the nets to train: "plain-56", "ResNet-56", both or none."""
        kinds = [kind for kind, box in (("plain", self.plain), ("ResNet", self.residual))
                 if box.value]
        return [f"{kind}-{self.depth.value}" for kind in kinds]

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        names = self.chosen()
        if not names:
            self.status.value = "<span style='color:#c00'>Choose plain, residual or both.</span>"
            return
        self.stop.clear()
        self.train_button.disabled, self.stop_button.disabled = True, False
        self.status.value = "loading data and building the networks ..."
        self.thread = threading.Thread(target=self._train, args=(names,), daemon=True)
        self.thread.start()

    def _build(self, names: list[str]) -> datasets.Dataset:
        """Load the data, build the nets (same seed: the same initial weights) and name the
        traces after them."""
        kwargs = {"size": self.size}
        if self.dataset.value == "synthetic":
            kwargs["n_train"] = 20_000
        data = datasets.load(self.dataset.value, **kwargs)
        self.models = self.nets(names, **data.net_options)
        self.lesion.prepare(self.models)
        name_runs(self.figure, names)
        return data

    def show_progress(self, run: Run) -> None:
        """The run so far in the curves, the heatmap, each net's strip and the status line
        (called by `LivePlots`, from the training thread)."""
        run.flush()                       # the rows still on the device, in one copy
        update_curves(self.figure, run.histories)
        update_heatmap(self.figure, {n: (h.layers, np.array(h.grad_step),
                                         np.array(h.grad_norms).reshape(-1, len(h.layers)))
                                     for n, h in run.histories.items()})
        for name, h in run.histories.items():
            self.lesion.strips[name].show(run.models[name], h.latest_norms(), (), ())
        self.status.value = (f"step {run.step}"
                             f"{'/' + str(run.max_steps) if run.max_steps else ''}"
                             f" &middot; {run.steps_per_second:.1f} steps/s &middot; "
                             f"device {run.device}")

    def what_changed(self) -> str:
        """For a plain net trained beside a ResNet: a line saying what differs between the two
        runs (the skip) and whether they started from the same weights, read from the runs."""
        if len(self.histories) != 2:
            return ""
        plain, resnet = self.histories.values()          # in `chosen`'s order
        changed, _, weights = (" ".join(line.split()) for line in between(resnet, plain).lines())
        return f"<br>{resnet.name} vs {plain.name}: {html.escape(changed)}; {html.escape(weights)}"

    def _train(self, names: list[str]) -> None:
        try:
            data = self._build(names)
            recipe = with_lr("constant", self.lr.value)
            self.histories = compare(self.models, data, steps=self.steps.value, recipe=recipe,
                                     callbacks=[self.live_plots], stop=self.stop)
            words = [f"{n}: {h.status}, final loss {h.final_train_loss():.3f}"
                     + (f" &mdash; {h.message}" if h.status == "diverged" else "")
                     for n, h in self.histories.items()]
            self.status.value += "<br>" + "<br>".join(words) + self.what_changed()
            self.lesion.start(data, {n: h.latest_norms() for n, h in self.histories.items()
                                     if h.grad_norms})
        except Exception as err:           # show it in the page; the kernel lives on
            self.status.value = (f"<span style='color:#c00'>Error: {err}</span>"
                                 f"<pre style='font-size:10px'>{traceback.format_exc(limit=3)}"
                                 "</pre>")
        finally:
            self.train_button.disabled, self.stop_button.disabled = False, True

