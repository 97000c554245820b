"""scripts/control_pictures.py: each predict-then-check state drives a real control, built as
its lesson builds it, into the state its question asks about, and the pictures show it."""

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from resnet_lab.app import ArchitectureExplorer, CardinalityExplorer, Explorer, TrainingLab
from resnet_lab.app.lesion import LesionView
from resnet_lab.training import data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from control_pictures import ANSWERS, show  # noqa: E402


def drive(control, state):
    said, items = ANSWERS[state](control)
    texts = [i for i in items if isinstance(i, str)]
    figures = [i for i in items if not isinstance(i, str)]
    assert said and texts and figures, (said, items)
    return said, texts, figures


def profile_labels(figure) -> list[str]:
    return [t.get_text() for t in figure.axes[0].get_legend().get_texts()]


def test_lesson_1s_answers_are_the_relu_mlp_with_default_then_he_init():
    explorer = Explorer()
    explorer.apply_preset("deep sigmoid MLP (vanishing)")       # as the lesson's cell does
    _, texts, figures = drive(explorer, "relu-default")
    assert "vanishing" in texts[0] and explorer.depth.value == 20
    assert explorer.controls()["kind"] == "deep MLP, ReLU"
    _, texts, figures = drive(explorer, "relu-he")
    assert "healthy" in texts[0]
    # the profile beside the one before, as the live figure has them: default init, then He
    previous, now = profile_labels(figures[-1])
    assert "(vanishing)" in previous and "(healthy)" in now


def test_lesson_2s_explorer_answer_cuts_stage_1_of_resnet_56():
    explorer = Explorer()
    said, texts, figures = drive(explorer, "resnet56-stage1-cut")
    assert [t.value for t in explorer.stages.children] == [False, True, True]
    assert explorer.skip.value == 1.0 and explorer.depth.value == 56
    assert "healthy" in texts[0] and "ResNet-56" in said
    previous, now = profile_labels(figures[-1])               # ResNet-56 beside the cut one
    ratio = lambda label: float(label.split("first/last ")[1].split()[0])
    assert ratio(now) > 2 * ratio(previous)                   # the input end rises


def test_lesson_3s_answers_are_basic_then_bottleneck_at_56_layers():
    architecture = ArchitectureExplorer()
    _, texts, _ = drive(architecture, "depth-56")
    assert "basic blocks, 56 layers" in texts[0] and "27 blocks" in texts[0]
    _, texts, _ = drive(architecture, "bottleneck-56")
    assert "bottleneck blocks, 56 layers" in texts[0] and "18 blocks" in texts[0]


def test_lesson_4s_control_starts_at_c_1_and_its_answer_is_c_32():
    cardinality = CardinalityExplorer(size=14, batch=2)
    assert "C = 1, d = 64" in cardinality.readout.value       # where the question starts
    _, texts, _ = drive(cardinality, "cardinality-32")
    assert "C = 32, d = 4" in texts[0]


@pytest.fixture(scope="module")
def trained_lab():
    """A small lab as lesson 2 builds it, driven: Train, then a block deleted in each net."""
    lab = TrainingLab(redraw_seconds=0.0, dataset="synthetic")
    lab.depth.value, lab.steps.value = 14, 20
    said, items = ANSWERS["train-then-delete"](lab)
    yield lab, said, items
    plt.close("all")


@pytest.mark.slow
def test_lesson_2s_lab_answer_trains_then_deletes_one_block_of_each_net(trained_lab):
    lab, said, items = trained_lab
    assert "Train (20 steps)" in said and "layer2.1" in said
    assert set(lab.lesion.results["layer2.1"]) == {"plain-14", "ResNet-14"}
    texts = [i for i in items if isinstance(i, str)]
    status = texts[0].splitlines()                              # the status after training
    assert [line.split(":")[0] for line in status[1:]] == ["plain-14", "ResNet-14",
                                                           "ResNet-14 vs plain-14"]
    assert all("finished" in line for line in status[1:3])
    assert status[3].startswith("ResNet-14 vs plain-14: changed: skip (1 → 0); weights: ")
    assert texts[1].startswith("ResNet-14 without layer2.1")    # the readout of the last click
    assert "layer2.1" in texts[2] and "plain-14" in texts[2]    # the table, both nets
    curves = items[1]
    assert [a.get_title() for a in curves.axes] == ["training loss", "test error"]


@pytest.mark.slow
def test_lesson_5s_lesion_answer_deletes_stage_3s_last_block_then_a_second(trained_lab):
    lab = trained_lab[0]
    lesion = LesionView()                                       # as lesson 5's cell builds it
    lesion.prepare(lab.models)
    lesion.start(data.synthetic(200, 200, size=16, seed=1), {})
    said, items = ANSWERS["delete-last-blocks"](lesion)
    # depth 14: layer3.1 is stage 3's last block, layer2.1 the deletable one before it
    assert lesion.deleted == {"plain-14": {"layer3.1"}, "ResNet-14": {"layer3.1", "layer2.1"}}
    assert set(lesion.results["layer3.1"]) == {"plain-14", "ResNet-14"}
    texts = [i for i in items if isinstance(i, str)]
    assert texts[0].startswith("ResNet-14 without layer2.1 + layer3.1")   # the two at once
    assert "layer3.1" in texts[1] and "plain-14" in texts[1]      # the table, both nets
    assert "layer3.1" in said and "layer2.1" in said


def test_show_heads_the_start_and_each_answer(capsys):
    cardinality = CardinalityExplorer(size=14, batch=2)
    show(cardinality)
    show(cardinality, "cardinality-32")
    out = capsys.readouterr().out
    assert out.index("As it starts") < out.index("C = 1,") < \
        out.index("The answer, as the widget shows it after sliding C to 32") < \
        out.index("C = 32,")


def test_an_answer_leaves_open_only_the_pictures_it_shows(monkeypatch):
    """A notebook shows every figure still open when a cell ends: an answer reached through an
    earlier state (He init through the default-init answer) must not leave that state's
    picture open, or it appears, stale, under the answer."""
    plt.close("all")
    shown = []
    monkeypatch.setattr(sys.modules["control_pictures"], "display", shown.append)
    explorer = Explorer()
    explorer.apply_preset("deep sigmoid MLP (vanishing)")
    show(explorer, "relu-he")
    figures = [item for item in shown if not isinstance(item, str)]
    assert figures and plt.get_fignums() == []
