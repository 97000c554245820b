"""Pictures of runs and gradient profiles: pure functions from numbers to figures.

matplotlib (`plot_*`) for notebooks, the CLI and the README; plotly (`*_figure`) for the live
widgets, where the app updates the traces in place (`update_*`). Nothing here trains.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import nullcontext

import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize

from ..instruments.regimes import first_last_ratio, regime
from ..nets.blocks import stage_of
from ..nets.paper import KARPATHY_UPDATE_RATIO
from ..training.data import Dataset
from ..training.history import History, running_mean
from .strip import COLORSCALE, LOG_RANGE, Cell

PLAIN_COLOURS = ("#d62728", "#ff7f0e", "#8c564b", "#e377c2")       # plain nets: red, then warm
RESIDUAL_COLOURS = ("#1f77b4", "#2ca02c", "#17becf", "#9467bd")    # residual: blue, then cool


def kind_colours(plain: Sequence[bool]) -> list[str]:
    """A colour per run, the same in every figure of the lab: the k-th plain net gets
    PLAIN_COLOURS[k], the k-th residual net RESIDUAL_COLOURS[k] (plain-20 red, ResNet-20 blue)."""
    return [(PLAIN_COLOURS if p else RESIDUAL_COLOURS)[sum(q == p for q in plain[:i]) % 4]
            for i, p in enumerate(plain)]


def line_style(plain: bool) -> str:
    """Plain networks are drawn dashed in every figure, so the difference never relies on
    colour alone: "--" for plain, "-" for residual (plotly: "dash", "solid")."""
    return "--" if plain else "-"


def trained_plain(history: History) -> bool:
    """Whether a run's model had every skip gate at 0, from the config `compare` recorded."""
    return bool(history.setup.get("plain"))


def stage_bounds(layers: Sequence[str]) -> list[tuple[int, str]]:
    """(index of the first layer, stage name) wherever the stage changes."""
    bounds, last = [], None
    for i, name in enumerate(layers):
        if stage_of(name) != last:
            last = stage_of(name)
            bounds.append((i, last))
    return bounds


# ---------------------------------------------------------------------------------------------
# matplotlib


def plot_curves(histories: Mapping[str, History], *, log_loss: bool = True,
                title: str = "") -> plt.Figure:
    """Training loss (left) and test error (right) of each run, against steps."""
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    plain = [trained_plain(h) for h in histories.values()]
    for (name, h), c in zip(histories.items(), kind_colours(plain), strict=True):
        style = line_style(trained_plain(h))
        loss = running_mean(h.train_loss, max(1, len(h.step) // 40))   # light smoothing
        ax_loss.plot(h.step, loss, style, color=c, label=name, lw=1.6)
        ax_err.plot(h.test_step, 100 * np.array(h.test_error), style + "o", color=c, label=name,
                    ms=3)
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
    if log_loss:
        ax_loss.set_yscale("log")
    ax_err.set(xlabel="step", ylabel="test error (%)", title="test error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_profile(profiles: Mapping[str, Mapping[str, float]], *, plain: Collection[str] = (),
                 title: str = "", ax: plt.Axes | None = None) -> plt.Figure:
    """Per-layer gradient norm (log scale), layers in network order, stages marked; the
    profiles named in `plain` are drawn dashed."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(10, 4))
    ax = ax or fig.add_subplot()
    layers: list[str] = []
    colours = kind_colours([name in plain for name in profiles])
    for (name, profile), colour in zip(profiles.items(), colours, strict=True):
        layers = list(profile)
        ratio, word = first_last_ratio(profile), regime(profile)
        values = np.maximum(np.array(list(profile.values())), 1e-30)
        ax.semilogy(values, line_style(name in plain), marker=".", color=colour,
                    label=f"{name}: first/last {ratio:.2g} ({word})")
    for start, stage in stage_bounds(layers):
        ax.axvline(start - 0.5, color="grey", lw=0.6, alpha=0.5)
        ax.text(start, 1.0, stage, transform=ax.get_xaxis_transform(), fontsize=7, va="bottom")
    ax.set(xlabel="layer (input → output)", ylabel="‖∂loss/∂W‖", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_heatmap(history: History, *, ax: plt.Axes | None = None) -> plt.Figure:
    """Layer x step picture of log10 gradient norms over training."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(8, 4))
    ax = ax or fig.add_subplot()
    values = np.array(history.grad_norms, dtype=float).T
    zero = values == 0
    steps = history.grad_step or [0]
    colours = plt.get_cmap("viridis").with_extremes(bad="#ff00ff")   # an exact 0: magenta
    image = ax.imshow(np.ma.masked_where(zero, np.log10(np.where(zero, 1.0, values))),
                      aspect="auto", origin="lower", cmap=colours,
                      extent=(steps[0], steps[-1], -0.5, len(history.layers) - 0.5))
    ax.set(xlabel="step", ylabel="layer (input at the bottom)",
           title=f"{history.name}: log10 gradient norm")
    fig.colorbar(image, ax=ax, label="log10 ‖g‖" + (" (magenta: exactly 0)" if zero.any()
                                                    else ""))
    fig.tight_layout()
    return fig


def plot_samples(images: Dataset, per_class: int = 1, *, title: str = "") -> plt.Figure:
    """The first `per_class` training images of every class, each titled with its label
    (contrast stretched per image for display; grey for one channel)."""
    classes = range(len(images.classes))
    picks = [i for c in classes for i in
             (images.y_train == c).nonzero().flatten()[:per_class].tolist()]
    cols = min(len(picks), 10)
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.45 * rows + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, picks, strict=False):
        x = images.x_train[i].float()
        x = ((x - x.min()) / (x.max() - x.min() + 1e-12)).permute(1, 2, 0).numpy()
        ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray", vmin=0, vmax=1)
        ax.set_title(images.classes[images.y_train[i]], fontsize=8)
    fig.suptitle(title or f"{images.name}: {len(images.x_train):,} training images of "
                 f"{images.shape[1]}x{images.shape[2]}, {len(images.classes)} classes",
                 fontsize=9)
    fig.tight_layout()
    return fig


ZERO_AT = -30.0   # where an update of exactly 0 is drawn on a log10 axis (and labelled "0")


def plot_update_ratios(ratios: np.ndarray, names: Sequence[str], *, title: str = "",
                       ax: plt.Axes | None = None) -> plt.Figure:
    """log10 of each layer's update-to-weight ratio over the steps (`hooks.UpdateRatios`), with
    Karpathy's 1e-3 guide line. Layers are coloured from the input (dark) to the output
    (yellow): a legend names up to 8, a colour bar stands for more. A ratio of exactly 0 is
    drawn at ZERO_AT, on a line labelled "exactly 0"."""
    fig = ax.figure if ax is not None else plt.figure(figsize=(8, 3.6))
    ax = ax or fig.add_subplot()
    ratios = np.asarray(ratios, dtype=float)
    shades = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(names)))
    for j, name in enumerate(names):
        logs = np.where(ratios[:, j] > 0, np.log10(np.maximum(ratios[:, j], 1e-300)), ZERO_AT)
        ax.plot(logs, color=shades[j], lw=1, label=name)
    ax.axhline(guide := np.log10(KARPATHY_UPDATE_RATIO), color="k", ls="--", lw=1)
    ax.text(0, guide, f" {KARPATHY_UPDATE_RATIO:g}: Karpathy's rule of thumb", va="bottom",
            fontsize=8)
    if (ratios == 0).any():
        ax.axhline(ZERO_AT, color="0.5", ls=":", lw=1)
        ax.text(0, ZERO_AT, " exactly 0 (no update at all)", va="bottom", fontsize=8)
    ax.set(xlabel="step", ylabel="log10 (update / weight)", title=title)
    ax.grid(alpha=0.3)
    if len(names) <= 8:
        ax.legend(fontsize=7, ncol=2)
    else:
        scale = ScalarMappable(cmap=ListedColormap(shades), norm=Normalize(1, len(names)))
        fig.colorbar(scale, ax=ax, label=f"layer (1 = {names[0]} … {len(names)} = {names[-1]})")
    fig.tight_layout()
    return fig


def plot_activation_stds(stds: Mapping[str, Sequence[float]], *, plain: Collection[str] = (),
                         title: str = "") -> plt.Figure:
    """Std of each layer's responses, as in He et al. 2015 Fig. 7 (plain vs residual), on a
    log axis; the runs named in `plain` are drawn dashed."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for (name, values), c in zip(stds.items(), kind_colours([n in plain for n in stds]),
                                 strict=True):
        ax.plot(values, line_style(name in plain), marker=".", color=c, label=name)
    ax.set(xlabel="layer", ylabel="std of the layer's output", title=title, yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_histograms(histograms: np.ndarray, hist_range: tuple[float, float], *,
                    names: Sequence[str] | None = None, title: str = "") -> plt.Figure:
    """fast.ai's "colorful dimension": one panel per layer, step on x, value bins on y,
    brightness = log of the fraction of outputs in the bin."""
    steps, layers, bins = histograms.shape
    fig, axes = plt.subplots(1, layers, figsize=(2.2 * layers, 2.6), sharey=True, squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.imshow(np.log1p(histograms[:, j, :].T * 100), aspect="auto", origin="lower",
                  extent=(0, steps, *hist_range), cmap="magma")
        ax.set_title(names[j] if names else f"layer {j}", fontsize=8)
        ax.set_xlabel("step", fontsize=8)
    axes[0][0].set_ylabel("activation value")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# plotly: figures for the live widgets


def update_profile(fig: go.Figure, profiles: Mapping[str, Mapping[str, float]]) -> None:
    """Put new profiles into `fig`'s traces (works on a live FigureWidget: one message)."""
    with _batch(fig):
        for trace, (name, profile) in zip(fig.data, profiles.items(), strict=False):
            trace.name = name
            trace.x = list(range(len(profile)))
            trace.y = [max(v, 1e-30) for v in profile.values()]
            trace.text = list(profile)
            trace.hovertemplate = "%{text}: %{y:.3g}<extra>" + name + "</extra>"


# each run's traces in the lab figure's top row, one subplot each: title -> plotly mode
LAB_CURVES = {"training loss": "lines", "test error (%)": "lines+markers"}


def lab_figure(names: Sequence[str]) -> go.Figure:
    """The training lab's one figure: training loss and test error of each run (top row) and
    a layer x step heatmap of log10 gradient norms per run (bottom row). One figure, so the page
    loads plotly's widget code once (each FigureWidget brings its own 5 MB copy)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=max(2, len(names)), vertical_spacing=0.2,
                        horizontal_spacing=0.08,
                        subplot_titles=(*LAB_CURVES, *names))
    for name in names:                  # colour and dash: set from each run's history
        for col, mode in enumerate(LAB_CURVES.values(), 1):
            fig.add_scatter(name=name, x=[], y=[], mode=mode, row=1, col=col,
                            legendgroup=name, showlegend=col == 1)
    for i, _ in enumerate(names):
        fig.add_heatmap(z=[[None]], row=2, col=i + 1, colorscale="Viridis", zmin=-4, zmax=2,
                        showscale=i == len(names) - 1,
                        colorbar=dict(title="log10 ‖g‖", len=0.42, y=0.2))
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(showticklabels=False, row=2)          # the layer names, once, on the left
    fig.update_yaxes(title_text="layer", showticklabels=True, row=2, col=1)
    fig.update_layout(height=640, margin=dict(l=50, r=20, t=40, b=40), template="plotly_white",
                      legend=dict(orientation="h", y=1.12))
    return fig


def traces_of(fig: go.Figure, kind: str) -> list:
    """The figure's traces of one type ("scatter", "heatmap"), in order."""
    return [t for t in fig.data if t.type == kind]


def name_runs(fig: go.Figure, names: Sequence[str]) -> None:
    """Give `lab_figure`'s traces and heatmap titles to the runs `names`, in order, and hide
    the traces of runs that are not there."""
    k = len(LAB_CURVES)
    with _batch(fig):
        for i, trace in enumerate(traces_of(fig, "scatter")):
            trace.visible = i // k < len(names)
            trace.name = names[min(i // k, len(names) - 1)]
        for i, trace in enumerate(traces_of(fig, "heatmap")):
            trace.visible = i < len(names)
        for i, name in enumerate(names):
            fig.layout.annotations[k + i].text = name     # after the curves' titles


def update_curves(fig: go.Figure, histories: Mapping[str, History]) -> None:
    """Put each run's curves into its traces (`LAB_CURVES`): `kind_colours`, plain dashed."""
    lines, k = traces_of(fig, "scatter"), len(LAB_CURVES)
    plain = [trained_plain(h) for h in histories.values()]
    with _batch(fig):
        clear_empty(fig)
        for i, (h, colour) in enumerate(zip(histories.values(), kind_colours(plain), strict=True)):
            loss, error = lines[k * i:k * i + k]
            for trace in (loss, error):
                trace.line.dash, trace.line.color = "dash" if plain[i] else "solid", colour
            loss.x, loss.y = h.step, h.train_loss
            error.x, error.y = h.test_step, [100 * e for e in h.test_error]


def update_heatmap(fig: go.Figure, grads: Mapping[str, tuple[list[str], np.ndarray, np.ndarray]],
                   max_columns: int = 300) -> None:
    """grads: name -> (layer names, recorded steps, norms array (steps, layers)).
    Long runs are thinned to at most `max_columns` steps, so each redraw stays small."""
    with _batch(fig):
        clear_empty(fig)
        for trace, (layers, steps, norms) in zip(traces_of(fig, "heatmap"), grads.values(),
                                                 strict=False):
            if len(steps):
                every = -(-len(steps) // max_columns)          # ceil: keep <= max_columns
                trace.z = np.log10(np.maximum(norms[::every].T, 1e-12)).round(3).tolist()
                trace.x = list(map(int, steps[::every]))
                trace.y = layers


def _batch(fig: go.Figure):
    """`batch_update` on a live FigureWidget (one message), a no-op context on a Figure."""
    return fig.batch_update() if isinstance(fig, go.FigureWidget) else nullcontext()


# ---------------------------------------------------------------------------------------------
# plotly: the network strip's gradient norms, one point per cell, aligned under the strip


STRIP_LEFT, STRIP_RIGHT = 60, 90         # the figure's margins in pixels: its x axis starts
                                         # STRIP_LEFT in, where the strip's first cell starts
STRIP_WIDTH = 672                        # pixels for all of a strip's cells together: 56 cells
                                         # of 12 px (110 layers); the figure fits 1280 px


def explorer_figure(cells: Sequence[Cell], values: Sequence[float], cell_width: int,
                    profiles: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """The explorer's one figure. Top: each strip cell's gradient norm (log y), coloured on
    the strip's shared scale (the colour bar is the legend), stages marked, aligned under the
    strip's buttons; update it with `update_strip_figure`. Below: one trace per per-layer
    profile; update them with `update_profile`. One figure, so the page loads plotly's widget
    code once (each FigureWidget brings its own 5 MB copy)."""
    from plotly.subplots import make_subplots

    lo, hi = LOG_RANGE
    fig = make_subplots(rows=2, cols=1, row_heights=[0.36, 0.64], vertical_spacing=0.1)
    for name in profiles:                     # blue: the explorer greys all but the last
        fig.add_scatter(name=name, mode="lines+markers", line_color=RESIDUAL_COLOURS[0],
                        row=2, col=1)
    fig.add_scatter(mode="lines+markers", line=dict(color="#999", width=1), showlegend=False,
                    marker=dict(size=11, colorscale=COLORSCALE, cmin=lo, cmax=hi,
                                line=dict(color="#333", width=1),
                                colorbar=dict(title="log10 ‖g‖", thickness=14, len=0.36,
                                              y=1, yanchor="top")),
                    hovertemplate="%{text}: %{y:.3g}<extra></extra>", row=1, col=1)
    fig.update_layout(height=600, width=STRIP_LEFT + STRIP_WIDTH + STRIP_RIGHT, autosize=False,
                      template="plotly_white", legend=dict(orientation="h", y=-0.14),
                      margin=dict(l=STRIP_LEFT, r=STRIP_RIGHT, t=28, b=50))
    fig.update_yaxes(type="log", title_text="block ‖∂L/∂W‖", row=1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1)
    fig.update_yaxes(type="log", title_text="‖∂loss/∂W‖", row=2)
    fig.update_xaxes(title_text="layer (input → output)", row=2)
    update_profile(fig, profiles)
    update_strip_figure(fig, cells, values, cell_width)
    return fig


def update_strip_figure(fig: go.Figure, cells: Sequence[Cell], values: Sequence[float],
                        cell_width: int) -> None:
    """New cells and values, in place; the width follows the strip: `cell_width` per cell."""
    lo, hi = LOG_RANGE
    stages = stage_bounds([c.stage for c in cells])
    with _batch(fig):
        trace = fig.data[-1]
        trace.x = list(range(len(cells)))
        trace.y = [max(v, 1e-30) for v in values]
        trace.text = [c.name for c in cells]
        trace.marker.color = [min(max(np.log10(v), lo), hi) if v > 0 else lo for v in values]
        fig.layout.xaxis.domain = [0, min(1.0, cell_width * len(cells) / STRIP_WIDTH)]
        fig.layout.xaxis.range = [-0.5, len(cells) - 0.5]
        fig.layout.shapes = [dict(type="line", xref="x", yref="y domain", x0=i - 0.5, x1=i - 0.5,
                                  y0=0, y1=1, line=dict(color="#bbb", width=1))
                             for i, _ in stages[1:]]
        fig.layout.annotations = [dict(x=i - 0.4, y=1.0, xref="x", yref="y domain", text=stage,
                                       showarrow=False, xanchor="left", yanchor="bottom",
                                       font=dict(size=10, color="#666"))
                                  for i, stage in stages]


def show_empty(fig: go.Figure, text: str) -> None:
    """A figure that has no data yet says so, instead of showing empty axes."""
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(text=text, name="empty", x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=14, color="#888"))


def clear_empty(fig: go.Figure) -> None:
    """Undo `show_empty` once the data arrives (a no-op when there is nothing to undo)."""
    if not any(a.name == "empty" for a in fig.layout.annotations):
        return
    fig.layout.annotations = [a for a in fig.layout.annotations if a.name != "empty"]
    fig.update_xaxes(visible=True)
    fig.update_yaxes(visible=True)
