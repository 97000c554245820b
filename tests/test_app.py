"""The app's handlers, without a browser: controls change what the figures hold."""

import threading
import time

import pytest
import torch

from resnet_lab import blocks_of, cifar_resnet
from resnet_lab.app import PRESETS, Explorer, TrainingLab, cached_model
from resnet_lab.nets import ensembles
from resnet_lab.pictures import diagrams
from resnet_lab.pictures.plots import STRIP_WIDTH, traces_of
from resnet_lab.training import data


@pytest.fixture
def explorer():
    """A fresh explorer per test (the models it shows are cached, so this is quick)."""
    return Explorer()


def plotted(explorer):
    return list(explorer.figure.data[1].y)


def test_explorer_starts_on_resnet_56_where_the_first_click_cuts_a_skip(explorer):
    assert len(plotted(explorer)) == 56
    assert "healthy" in explorer.readout.value
    assert explorer.controls() == PRESETS["ResNet-56"][1]
    assert not any(t.disabled for t in explorer.stages.children)
    before = plotted(explorer)
    block_button(explorer, "layer1.0").click()             # what a student tries first
    assert explorer.shown.model.layer1[0].skip == 0.0 and plotted(explorer) != before


def test_depth_slider_gives_a_new_profile(explorer):
    before = plotted(explorer)
    explorer.depth.value = 20
    after = plotted(explorer)
    assert len(after) == 20 and after != before[:20]
    assert list(explorer.figure.data[0].y) == before        # the ghost shows the last setting


@pytest.mark.slow
def test_skip_gate_and_stage_toggles_change_the_profile(explorer):
    toggle = explorer.stages.children[1]
    explorer.skip.value = 0.0
    assert toggle.disabled and toggle.description == "stage 2 skips: off"   # no skips to switch
    explorer.skip.value = 1.0
    assert not toggle.disabled and toggle.description == "stage 2 skips: on"
    assert toggle.button_style == "info" and toggle.icon == "check"         # not only a shade
    residual = plotted(explorer)
    assert "healthy" in explorer.readout.value
    toggle.value = False                                     # stage 2 plain again
    assert toggle.description == "stage 2 skips: off" and toggle.button_style == ""
    partly = plotted(explorer)
    assert partly != residual
    toggle.value = True
    assert plotted(explorer) == residual                     # back where we were, no rebuild


@pytest.mark.slow
def test_block_type_switches_to_bottleneck_depths(explorer):
    explorer.block.value = "bottleneck"
    assert explorer.depth.options[0] == 11 and explorer.depth.value == 56   # 56 = 9*6 + 2
    assert len(plotted(explorer)) == 56
    explorer.depth.value = 38
    assert len(plotted(explorer)) == 38
    explorer.block.value = "basic"
    assert explorer.depth.value == 38 and len(plotted(explorer)) == 38      # 38 is 6n+2 too
    explorer.block.value = "bottleneck"
    explorer.depth.value = 47
    explorer.block.value = "basic"
    assert explorer.depth.value == 44 and len(plotted(explorer)) == 44      # nearest 6n+2


def test_mlp_and_batchnorm_switches(explorer):
    explorer.skip.value = 0.0
    explorer.norm.value = False
    explorer.init.value = "default"
    assert "vanishing" in explorer.readout.value           # no BN, default init: vanishing
    explorer.norm.value, explorer.init.value = True, "he"
    explorer.kind.value = "deep MLP, sigmoid"
    assert explorer.norm.disabled and "vanishing" in explorer.readout.value
    explorer.skip.value = 1.0
    assert "healthy" in explorer.readout.value


@pytest.mark.slow
def test_the_app_leaves_the_users_random_state_alone():
    torch.manual_seed(1234)
    state = torch.random.get_rng_state()
    explorer = Explorer()
    explorer.depth.value = 20
    explorer.warm_thread.join(60)
    lab = TrainingLab(redraw_seconds=0.0, dataset="synthetic")
    lab.depth.value, lab.steps.value = 8, 5
    lab.start()
    lab.thread.join(120)
    assert "finished" in lab.status.value
    assert torch.equal(torch.random.get_rng_state(), state)


def test_seeded_builds_in_a_thread_leave_the_users_random_numbers_alone():
    """The explorer's warm-up builds seeded nets in a thread while the user's own code draws
    from torch's global generator: the user's numbers are the same as with nothing beside."""
    torch.manual_seed(123)
    expected = [torch.randn(64) for _ in range(200)]
    done = threading.Event()

    def build_beside() -> None:
        explorer = Explorer()                   # its warm-up thread builds 18 seeded nets
        while not done.is_set():
            cifar_resnet(8, seed=7)
        explorer.warm_thread.join(60)

    builder = threading.Thread(target=build_beside)
    builder.start()
    torch.manual_seed(123)
    drawn = []
    for _ in range(200):
        drawn.append(torch.randn(64))
        time.sleep(0.001)                       # let the builders run between the draws
    done.set()
    builder.join(60)
    assert all(torch.equal(a, b) for a, b in zip(drawn, expected, strict=True))


def test_warm_up_builds_exactly_the_models_the_explorer_asks_for(explorer):
    explorer.warm_thread.join(60)
    info = cached_model.cache_info()
    explorer.depth.value = 110                  # built by the warm-up: cache hits only
    assert cached_model.cache_info().hits > info.hits
    assert cached_model.cache_info().misses == info.misses


@pytest.mark.slow
def test_training_lab_trains_draws_and_stops():
    lab = TrainingLab(redraw_seconds=0.0, dataset="synthetic")
    lab.depth.value, lab.steps.value = 8, 40
    lab.start()
    lab.thread.join(120)
    curves, heatmaps = traces_of(lab.figure, "scatter"), traces_of(lab.figure, "heatmap")
    assert [len(curves[i].x) for i in (0, 2)] == [40, 40]
    assert heatmaps[0].z is not None and len(heatmaps[0].y) == 8
    assert "plain-8: finished" in lab.status.value and not lab.train_button.disabled
    assert "ResNet-8 vs plain-8: changed: skip (1 → 0); weights: seed 0 for both: all " \
           in lab.status.value                       # the runs' one difference, read from them
    # Stop: a long run ends at a step boundary, everything so far is kept
    lab.steps.value = 3000
    lab.start()
    while not lab.figure.data[0].x or len(lab.figure.data[0].x) < 5:
        lab.thread.join(0.05)
    lab.stop_button.click()
    lab.thread.join(60)
    assert not lab.thread.is_alive()
    assert all(h.status == "stopped" for h in lab.histories.values())
    assert len(lab.histories["ResNet-8"].step) < 3000 and "stopped" in lab.status.value


def test_training_lab_reports_bad_settings_in_the_page(tmp_path, monkeypatch):
    lab = TrainingLab()
    lab.plain.value = lab.residual.value = False
    lab.start()
    assert lab.thread is None and "Choose" in lab.status.value
    lab.plain.value = True
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not an archive")
    monkeypatch.setattr(data, "CACHE", tmp_path)
    lab.dataset.value = "cifar10"
    lab.start()
    lab.thread.join(60)
    assert "Error" in lab.status.value and "MD5" in lab.status.value
    assert not lab.train_button.disabled                    # ready for the next try


def block_button(explorer, name):
    return explorer.strip.buttons[[c.name for c in explorer.strip.cells].index(name)]


def test_the_strip_draws_every_block_and_a_click_cuts_then_restores_its_skip(explorer):
    explorer.apply_preset("ResNet-56")
    cells = explorer.strip.cells
    assert [c.kind for c in cells] == ["stem"] + ["block"] * 27 + ["head"]
    assert len(explorer.figure.data[-1].y) == 29
    before, colours = plotted(explorer), [b.style.button_color for b in explorer.strip.buttons]
    assert len(set(colours)) > 3                                   # coloured by gradient norm
    button = block_button(explorer, "layer2.4")
    assert not button.disabled and button.description == "2.4"       # its stage and number
    button.click()
    assert explorer.shown.model.layer2[4].skip == 0.0 and button.description == "✂"
    assert "dashed" in button.layout.border and "skip cut" in button.tooltip
    cut = plotted(explorer)
    assert cut != before
    button.click()
    assert plotted(explorer) == before and button.description == "2.4"   # exactly as before


def test_the_strip_works_for_every_depth_and_block_type(explorer):
    explorer.skip.value = 1.0
    for block, depth, blocks in (("basic", 110, 54), ("bottleneck", 110, 36),
                                 ("bottleneck", 11, 3), ("basic", 8, 3)):
        explorer.block.value = block
        explorer.depth.value = depth
        assert sum(c.kind == "block" for c in explorer.strip.cells) == blocks
        # the whole strip fits its width, each cell at least 12 px wide (clickable)
        width = explorer.strip.cell_width
        assert width >= 12 and width * len(explorer.strip.cells) <= STRIP_WIDTH
    explorer.kind.value = "deep MLP, tanh"
    assert [c.kind for c in explorer.strip.cells][1:3] == ["block", "block"]
    explorer.depth.value = 20
    assert [b.description for b in explorer.strip.buttons][:3] == ["in", "0", "1"]   # blocks.1


def test_a_gate_of_zero_draws_every_block_cut_and_disables_the_strip(explorer):
    explorer.skip.value = 0.0
    blocks = [b for b, c in zip(explorer.strip.buttons, explorer.strip.cells, strict=True)
              if c.kind == "block"]
    assert all(b.description == "✂" and b.disabled for b in blocks)
    explorer.skip.value = 1.0                              # the marks follow the gate back
    assert not any("✂" in b.description or b.disabled for b in blocks)
    explorer.depth.value = 110                             # cells too narrow for a label:
    assert all(b.description == "\u00a0" for b in explorer.strip.buttons)   # a blank, never ""


@pytest.mark.parametrize("name,word", [
    ("deep sigmoid MLP (vanishing)", "vanishing"),
    ("plain-56 with BatchNorm (exploding)", "exploding"),
    ("ResNet-56", "healthy"),
    ("skip gate 0.5 over 27 blocks", "exploding"),
    ("pre-activation ResNet-110", "healthy"),
])
def test_presets_set_every_control_in_one_redraw(explorer, name, word):
    explorer.skip.value = 0.3                             # something the preset must undo
    explorer.stages.children[0].value = False
    redraws = []
    original = explorer.state                             # read once per redraw
    explorer.state = lambda: redraws.append(1) or original()
    explorer.apply_preset(name)
    assert redraws == [1]
    assert f">{word}<" in explorer.readout.value
    settings = PRESETS[name][1]
    assert explorer.controls() == settings and all(t.value for t in explorer.stages.children)


def test_training_lab_has_a_clean_empty_state():
    lab = TrainingLab()
    assert any(a.name == "empty" and "Press Train" in a.text
               for a in lab.figure.layout.annotations)
    assert lab.figure.layout.xaxis.visible is False and lab.figure.layout.xaxis3.visible is False
    # no heatmap holds a number before a step (a solid square would look like data), and each
    # says so in grey, over its own subplot
    heatmaps = traces_of(lab.figure, "heatmap")
    assert all(v is None for h in heatmaps for row in h.z for v in row)
    labels = [a for a in lab.figure.layout.annotations if a.text == "no steps yet"]
    assert sorted(a.xref for a in labels) == sorted(f"{h.xaxis} domain" for h in heatmaps)
    assert all(a.name == "empty" for a in labels)           # the first draw takes them away


@pytest.mark.parametrize("here", [True, False])
def test_training_lab_starts_on_fashion_mnist_where_it_is_here_else_says_why_not(
        here, tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path)
    if here:                                               # as Debian's package lays them out
        for name in data.FASHION_FILES:
            (tmp_path / name).touch()
    lab = TrainingLab()
    assert lab.dataset.value == ("fashion_mnist" if here else "synthetic")
    assert ("Fashion-MNIST" in lab.status.value) and \
        (("not on this machine" in lab.status.value) != here)


@pytest.mark.slow
def test_lesion_view_after_training():
    lab = TrainingLab(redraw_seconds=0.0, dataset="synthetic")
    lab.depth.value, lab.steps.value = 20, 40
    lab.start()
    lab.thread.join(300)
    assert not any(a.name == "empty" for a in lab.figure.layout.annotations)
    lesion = lab.lesion
    assert set(lesion.strips) == {"plain-20", "ResNet-20"}
    strip = lesion.strips["plain-20"]
    clickable = [c.name for c, b in zip(strip.cells, strip.buttons, strict=True)
                 if not b.disabled]
    assert clickable == ensembles.deletable_blocks(lab.models["plain-20"])
    intact = dict(lesion.results["none"])
    jumps = {}
    for name in ("plain-20", "ResNet-20"):
        button = lesion.strips[name].buttons[[c.name for c in strip.cells].index("layer3.1")]
        button.click()
        assert button.description == "✕" and "lesion-error" in lesion.readout.value
        jumps[name] = lesion.results["layer3.1"][name] - intact[name]
        button.click()                                      # put back: the intact error again
        assert lesion.error(name) == pytest.approx(intact[name])
    assert set(jumps) == set(lesion.results["layer3.1"])    # which hurts more: lesson 5's verdict
    assert "layer3.1" in lesion.table.value


def test_the_lesion_view_marks_follow_its_state_and_two_deletions_are_recorded():
    from resnet_lab.app import LesionView

    nets = {"plain-14": cifar_resnet(14, width=4, skip=0.0, seed=0),
            "ResNet-14": cifar_resnet(14, width=4, seed=0)}
    lesion = LesionView(test_samples=64)
    lesion.prepare(nets)
    lesion.start(data.synthetic(64, 64, size=16, seed=0), {})
    strip = lesion.strips["ResNet-14"]
    button = strip.buttons[[c.name for c in strip.cells].index("layer1.1")]
    assert button.description == "1.1"                          # its stage and number
    button.click()
    assert button.description == "✕" and "without <b>layer1.1</b>" in lesion.readout.value
    button.click()                                              # put back: the mark goes
    assert button.description == "1.1" and "with every block in place" in lesion.readout.value
    for block in ("layer1.1", "layer3.1"):                      # two blocks deleted together
        strip.buttons[[c.name for c in strip.cells].index(block)].click()
    assert set(lesion.results) == {"none", "layer1.1", "layer1.1 + layer3.1"}
    assert "layer1.1 + layer3.1" in lesion.table.value
    assert lesion.results["layer1.1 + layer3.1"]["ResNet-14"] == lesion.error("ResNet-14")
    _, table, plain, resnet = lesion.snapshot()          # the page without a kernel says it too
    crosses = [t for t in resnet.axes[0].texts if t.get_text() == "✕"]
    assert len(crosses) == 2 and "layer1.1 + layer3.1 deleted" in resnet.axes[0].get_title()
    assert "✕" not in [t.get_text() for t in plain.axes[0].texts]
    assert "layer1.1 + layer3.1" in table


def test_the_mlp_takes_the_init_switch_too(explorer):
    explorer.skip.value = 0.0
    explorer.kind.value, explorer.depth.value = "deep MLP, ReLU", 50
    assert not explorer.init.disabled and explorer.norm.disabled
    explorer.init.value = "default"
    assert ">vanishing<" in explorer.readout.value         # PyTorch's init: too small per layer
    explorer.init.value = "he"
    assert ">healthy<" in explorer.readout.value           # He init keeps a ReLU stack level


def test_lesson_3_control_gives_parameters_macs_and_a_drawing():
    from resnet_lab.app import ArchitectureExplorer

    control = ArchitectureExplorer()
    assert "269,722" in control.readout.value                      # ResNet-20, 0.27M
    picture = control.picture.value
    assert picture[:4] == b"\x89PNG"
    control.depth.value = 56
    assert "853,018" in control.readout.value and control.picture.value != picture
    control.block.value = "bottleneck"                             # 56 = 9*6 + 2 stays
    assert control.depth.value == 56 and "18 blocks" in control.readout.value


def test_lesson_4_control_keeps_the_budget_while_cardinality_grows():
    from resnet_lab.app import CardinalityExplorer
    from resnet_lab.nets.paper import XIE2017_TABLE2

    widths = dict(XIE2017_TABLE2)

    control = CardinalityExplorer(size=14, batch=2)
    params, pictures = {}, set()
    for c in widths:
        control.cardinality.value = c
        params[c] = int(control.readout.value.split("class='params'>")[1].split("<")[0]
                        .replace(",", ""))
        assert f"C = {c}, d = {widths[c]}" in control.readout.value and " ms</b>" in \
            control.readout.value
        pictures.add(control.picture.value)
        grid = diagrams.connectivity(control.block.conv2)     # the picture's weight grid
        assert grid.shape == (c * widths[c],) * 2 and grid.sum() == grid.size / c
    assert max(params.values()) / min(params.values()) < 1.05      # the same budget
    assert len(pictures) == len(widths)                        # a new picture for each C


def test_the_training_lab_starts_on_the_lessons_data_and_announces_the_lesion_view():
    lab = TrainingLab(dataset="fashion_mnist")
    assert lab.dataset.value == "fashion_mnist" and "Fashion-MNIST" in lab.status.value
    assert "delete" in lab.status.value and "lesion view" in lab.status.value   # before Train
    with pytest.raises(ValueError, match="dataset='mnist' is not allowed"):
        TrainingLab(dataset="mnist")
    lab.residual.value = False
    text, plain = lab.snapshot()                     # what a reader without a kernel sees
    assert "Fashion-MNIST" in text and "plain-56" in plain.axes[0].get_title()
    assert "1×16×16" in [t.get_text() for t in plain.axes[0].texts]   # one channel, QUICK size


def test_the_explorer_picture_is_a_function_of_its_state_alone():
    from resnet_lab.app.explorer import ExplorerState, picture, profile_of

    plain = picture(ExplorerState(depth=20))
    resnet = picture(ExplorerState(depth=20, skip=1.0))
    assert plain.clickable == [] and len(plain.cut) == 9            # gate 0: every skip cut
    assert resnet.cut == [] and len(resnet.clickable) == 9
    cut = picture(ExplorerState(depth=20, skip=1.0, stages_off=("layer1",),
                                cut=frozenset({"layer3.0", "layer5.5"})))   # 5.5: not in it
    assert cut.cut == ["layer1.0", "layer1.1", "layer1.2", "layer3.0"]
    assert picture(ExplorerState(depth=20, skip=1.0, cut=frozenset({"layer3.0"}))).cut == \
        ["layer3.0"]                                         # a cut alone, no stage off
    assert cut.profile != resnet.profile
    hits = profile_of.cache_info().hits
    again = picture(ExplorerState(depth=20, skip=1.0))   # a state seen before: no new pass
    assert profile_of.cache_info().hits == hits + 1 and again.profile == resnet.profile
    assert again.cut == [] and all(b.skip == 1.0 for b in blocks_of(again.model).values())
    profile_of.cache_clear()                             # computed afresh, on the same net
    assert profile_of(ExplorerState(depth=20, skip=1.0)) == pytest.approx(resnet.profile)


def test_live_plots_draw_at_most_every_redraw_seconds_and_once_at_the_end():
    from resnet_lab.app import LivePlots

    drawn, live = [], [True]
    plots = LivePlots(drawn.append, lambda: live[0], redraw_seconds=60)
    for step in range(5):
        plots.on_step(step)
    assert drawn == [0]                          # the first step, then nothing for 60 s
    plots.redraw_seconds = 0
    live[0] = False                              # "live plots" unticked: none while it trains
    plots.on_step(5)
    plots.on_end(6)
    assert drawn == [0, 6]
