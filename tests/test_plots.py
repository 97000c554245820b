"""Plots draw what they are given: the right curves, in the right order, updated in place."""

import matplotlib
import numpy as np
import plotly.graph_objects as go
import pytest

from resnet_lab.pictures import plots
from resnet_lab.pictures.strip import Cell
from resnet_lab.training.history import History

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the file-only backend)


def history(name, n=50, layers=("conv1", "layer1.0.conv1", "layer2.0.conv1", "fc"), plain=False):
    rng = np.random.default_rng(len(name))
    h = History(name, setup={"plain": plain}, step=list(range(1, n + 1)),
                train_loss=list(np.linspace(2, 0.1, n)),
                train_error=[0.5] * n, test_step=[25, 50], test_loss=[1.0, 0.5],
                test_error=[0.3, 0.1], layers=list(layers), grad_step=list(range(1, n + 1)))
    h.grad_norms = rng.uniform(0.01, 1, (n, len(layers))).tolist()
    return h




def test_stage_bounds():
    assert plots.stage_bounds(["conv1", "layer1.0.conv1", "layer1.1.conv1", "layer2.0.conv1",
                               "fc"]) == [(0, "conv1"), (1, "layer1"), (3, "layer2"), (4, "fc")]


def test_curves_have_one_line_per_run_and_plain_is_dashed():
    runs = {"plain-20": history("plain-20", plain=True), "ResNet-20": history("ResNet-20")}
    fig = plots.plot_curves(runs)
    loss_ax, err_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["plain-20", "ResNet-20"]
    assert loss_ax.lines[0].get_linestyle() == "--" and loss_ax.lines[1].get_linestyle() == "-"
    # the style follows the model's skip setting, not its name
    named_wrongly = {"ResNet?": history("a", plain=True), "plain?": history("b")}
    styles = [line.get_linestyle() for line in plots.plot_curves(named_wrongly).axes[0].lines]
    assert styles == ["--", "-"]
    assert list(err_ax.lines[0].get_ydata()) == pytest.approx([30, 10])

    # smoothing (a running mean of len/40 steps) keeps the ends honest: no dip from padding
    long = history("long", n=200)
    line = plots.plot_curves({"long": long}).axes[0].lines[0]
    assert line.get_xdata()[-1] == 200
    assert line.get_ydata()[-1] == pytest.approx(np.mean(long.train_loss[-5:]))


def test_profile_plot_marks_stages_and_reports_the_ratio():
    fig = plots.plot_profile({"plain": {"conv1": 100.0, "layer1.0.conv1": 10.0, "fc": 0.1}},
                             plain=["plain"])
    ax = fig.axes[0]
    assert ax.lines[0].get_linestyle() == "--"
    assert list(ax.lines[0].get_ydata()) == [100.0, 10.0, 0.1]
    assert "1e+03 (exploding)" in ax.lines[0].get_label()
    assert [t.get_text() for t in ax.texts] == ["conv1", "layer1", "fc"]


def test_heatmap_and_activation_pictures():
    h = history("ResNet")
    fig = plots.plot_heatmap(h)
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (4, 50)                           # layers x steps
    assert np.allclose(image, np.log10(np.array(h.grad_norms)).T)
    fig = plots.plot_activation_stds({"plain": [1, 2, 3], "ResNet": [1, 1, 1]})
    assert len(fig.axes[0].lines) == 2
    fig = plots.plot_histograms(np.random.rand(10, 3, 20), (0, 5))
    assert len(fig.axes) == 3


def test_plotly_figures_update_in_place():
    cells = [Cell("stem", "stem", "stem", ("conv1",)), Cell("layer1.0", "block", "layer1", ())]
    fig = go.FigureWidget(plots.explorer_figure(cells, [1.0, 2.0], 40, {"a": {"x": 1.0}}))
    plots.update_profile(fig, {"a": {"x": 3.0, "y": 4.0, "z": 5.0}})
    assert list(fig.data[0].y) == [3.0, 4.0, 5.0] and list(fig.data[0].text) == ["x", "y", "z"]
    plots.update_strip_figure(fig, cells, [0.5, 8.0], 40)
    assert list(fig.data[-1].y) == [0.5, 8.0]                  # the strip's trace, not a profile
    assert fig.layout.xaxis.domain == (0, 80 / plots.STRIP_WIDTH)   # under the strip's 2 cells
    runs = {"plain": history("plain", plain=True), "ResNet": history("ResNet")}
    lab = go.FigureWidget(plots.lab_figure(list(runs)))
    plots.update_curves(lab, runs)
    curves, heat = plots.traces_of(lab, "scatter"), plots.traces_of(lab, "heatmap")
    assert len(curves) == 4 and list(curves[3].y) == [30, 10]
    assert [t.line.dash for t in curves] == ["dash", "dash", "solid", "solid"]
    plots.name_runs(lab, ["ResNet-20"])                 # one run this time: the rest hidden
    assert [(t.name, t.visible) for t in curves] == [("ResNet-20", True)] * 2 + \
        [("ResNet-20", False)] * 2
    assert [t.visible for t in heat] == [True, False]
    assert [a.text for a in lab.layout.annotations][:3] == [*plots.LAB_CURVES, "ResNet-20"]
    h = runs["ResNet"]
    plots.update_heatmap(lab, {n: (r.layers, np.array(r.grad_step), np.array(r.grad_norms))
                               for n, r in runs.items()})
    assert np.allclose(heat[1].z, np.log10(np.array(h.grad_norms)).T, atol=1e-3)
    assert list(heat[1].y) == h.layers
    long = history("long", n=1000)
    plots.update_heatmap(lab, {"long": (long.layers, np.array(long.grad_step),
                                        np.array(long.grad_norms))})
    assert len(heat[0].x) == 250 and heat[0].x[-1] == 997   # every 4th step


def test_the_update_ratio_plot_names_its_layers_and_marks_an_exact_zero():
    ratios = np.full((6, 12), 1e-3)
    ratios[:, 0] = 0.0                                  # the first layer never moved
    fig = plots.plot_update_ratios(ratios, [f"layer{i}" for i in range(12)])
    ax, bar = fig.axes                                  # 12 layers: a colour bar, no legend
    assert ax.get_legend() is None and "1 = layer0" in bar.get_ylabel()
    assert ax.lines[0].get_ydata().tolist() == [plots.ZERO_AT] * 6
    assert any("exactly 0" in t.get_text() for t in ax.texts)
    few = plots.plot_update_ratios(ratios[:, 1:4], ["a", "b", "c"])
    assert len(few.axes) == 1 and [t.get_text() for t in few.axes[0].get_legend().texts] == \
        ["a", "b", "c"]
    assert not any("exactly 0" in t.get_text() for t in few.axes[0].texts)
    plt.close("all")


def test_the_sample_grid_shows_one_labelled_image_per_class():
    from resnet_lab.training import data
    images = data.synthetic(200, 20, size=8, seed=0)
    fig = plots.plot_samples(images, per_class=2)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 20
    titles = [ax.get_title() for ax in shown]
    assert titles == [c for c in images.classes for _ in range(2)]
    assert "synthetic: 200 training images of 8x8, 10 classes" in fig._suptitle.get_text()
    plt.close("all")


def test_the_heatmap_has_a_colour_bar_and_marks_an_exact_zero():
    h = history("plain-8", n=10)
    h.grad_norms[3][0] = 0.0                            # the first layer got no gradient once
    fig = plots.plot_heatmap(h)
    image, bar = fig.axes[0].images[0], fig.axes[1]
    assert "magenta: exactly 0" in bar.get_ylabel()
    assert image.get_array().mask[0, 3] and image.get_array().mask.sum() == 1
    assert "exactly 0" not in plots.plot_heatmap(history("ResNet-8", n=10)).axes[1].get_ylabel()
    plt.close("all")


def test_one_colour_per_kind_of_net_in_every_figure():
    """Plain nets red (then warm shades), residual nets blue (then cool ones), whatever the
    order: the lab's curves, the lessons' curves and profiles agree."""
    red, blue = plots.PLAIN_COLOURS[0], plots.RESIDUAL_COLOURS[0]
    assert plots.kind_colours([False, True, True, False]) == [
        blue, red, plots.PLAIN_COLOURS[1], plots.RESIDUAL_COLOURS[1]]
    for order in (["plain-20", "ResNet-20"], ["ResNet-20", "plain-20"]):
        runs = {n: history(n, plain=n.startswith("plain")) for n in order}
        drawn = {line.get_label(): line.get_color() for line in
                 plots.plot_curves(runs).axes[0].lines}
        assert drawn == {"plain-20": red, "ResNet-20": blue}
        lab = go.Figure(plots.lab_figure(order))
        plots.update_curves(lab, runs)
        assert {t.name: t.line.color for t in lab.data if t.type == "scatter"} == drawn
        profiles = {n: {"conv1": 1.0, "fc": 0.5} for n in order}
        figure = plots.plot_profile(profiles, plain=["plain-20"])
        assert [line.get_color() for line in figure.axes[0].lines[:2]] == [drawn[n] for n in order]
    plt.close("all")
