"""Diagrams are read from the model objects: what they draw is what the code builds."""


import matplotlib
import matplotlib.text
import pytest
from torch import nn

import resnet_lab as rl
from resnet_lab.nets.cardinality import AggregatedTransform
from resnet_lab.pictures import diagrams, strip

matplotlib.use("Agg")


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_blocks_read_like_the_lecture():
    # the course notes' bottleneck: 256 -> 64 -> 64 -> 256, ReLU after the addition
    assert diagrams.block_steps(rl.Bottleneck(256, 64)) == [
        "1×1 conv 256→64", "BN 64", "ReLU", "3×3 conv 64→64", "BN 64", "ReLU",
        "1×1 conv 64→256", "BN 256", "+", "ReLU"]
    assert diagrams.block_steps(rl.BasicBlock(64, 64)) == [
        "3×3 conv 64→64", "BN 64", "ReLU", "3×3 conv 64→64", "BN 64", "+", "ReLU"]
    # pre-activation (He et al. 2016): BN and ReLU first, nothing after the addition
    assert diagrams.block_steps(rl.BasicBlock(16, 16, preact=True)) == [
        "BN 16", "ReLU", "3×3 conv 16→16", "BN 16", "ReLU", "3×3 conv 16→16", "+"]
    assert diagrams.block_steps(rl.Bottleneck(256, 64, stride=2, groups=32, base_width=4))[3] \
        == "3×3 conv 128→128, /2, 32 groups"
    assert "BN" not in " ".join(diagrams.block_steps(rl.BasicBlock(8, 8, norm=False)))


def test_a_block_drawing_shows_its_shortcut_and_a_cut_skip():
    fig = diagrams.draw_block(rl.BasicBlock(16, 32, stride=2, shortcut="B"))
    assert any("shortcut: 1×1 conv 16→32, /2 + BN" in t for t in texts(fig))
    block = rl.BasicBlock(16, 32, stride=2, shortcut="A")
    block.skip = 0.0
    assert any(t.startswith("✂ cut: x, /2, +16 zero channels") for t in
               texts(diagrams.draw_block(block)))


def test_resnet50_stage_by_stage():
    stages = diagrams.network_stages(rl.resnet50(), (1, 3, 224, 224))
    assert [s.size for s in stages] == [224, 112, 56, 56, 28, 14, 7, 1, 1]
    assert [s.channels for s in stages] == [3, 64, 64, 256, 512, 1024, 2048, 2048, 1000]
    assert [s.text.split("\n")[0] for s in stages[3:7]] == [
        "stage 1: 3 × Bottleneck", "stage 2: 4 × Bottleneck", "stage 3: 6 × Bottleneck",
        "stage 4: 3 × Bottleneck"]
    assert stages[1].text == "7×7 conv, 64, /2" and stages[-1].text == "fc 1000"
    assert stages[3].text.endswith("3×3 width 64")


def test_a_cifar_net_drawing_marks_its_cut_blocks():
    model = rl.cifar_resnet(20)
    rl.set_skip(model, 0.0, "layer2")
    fig = diagrams.draw_network(model, (1, 3, 32, 32))
    squares = [p for p in fig.axes[0].patches if isinstance(p, matplotlib.patches.Rectangle)
               and not isinstance(p, matplotlib.patches.FancyBboxPatch)]
    assert len(squares) == 9
    assert [p.get_linestyle() for p in squares].count("--") == 3
    assert "16×32×32" in texts(fig) and "64×8×8" in texts(fig)


def test_resnext_forms_take_their_numbers_from_the_transform():
    found = texts(diagrams.draw_resnext_forms(AggregatedTransform(256, 32, 4)))
    assert "3×3 128→128, groups = 32" in found and "1×1 256→4" in found
    assert "path 32" in found and "concatenate → 128" in found


def test_strip_cells_and_their_norms():
    cells = strip.strip_cells(rl.cifar_resnet(20))
    assert [c.name for c in cells][:2] == ["stem", "layer1.0"] and cells[-1].name == "head"
    assert cells[4].layers == ("layer2.0.conv1", "layer2.0.conv2") and cells[4].label == \
        "stage 2, block 1"
    with_projection = strip.strip_cells(rl.cifar_resnet(20, shortcut="B"))
    assert "layer2.0.downsample.0" in with_projection[4].layers
    norms = strip.cell_norms(cells[:2], {"conv1": 3.0, "layer1.0.conv1": 3.0,
                                            "layer1.0.conv2": 4.0})
    assert norms == [3.0, 5.0]
    assert [c.kind for c in strip.strip_cells(rl.deep_mlp(3))] == \
        ["stem", "block", "block", "block", "head"]


@pytest.mark.parametrize("value,expected,text", [
    (1e-9, "#440154", "#ffffff"),       # below the scale: its dark end, white text
    (1e-4, "#440154", "#ffffff"),       # the scale's ends are 1e-4 and 1e2
    (1e-1, "#21918c", "#ffffff"),       # the middle of viridis, half-way in log10
    (1e2, "#fde725", "#000000"),
    (1e5, "#fde725", "#000000"),        # above it: its bright end, black text
    (0.0, "#440154", "#ffffff"),        # no gradient at all: the dark end
])
def test_the_colour_scale_is_log_viridis_from_1e_minus_4_to_1e2_and_clips(value, expected,
                                                                           text):
    assert strip.norm_colour(value) == expected
    assert strip.text_colour(expected) == text


def test_a_grouped_conv_is_block_diagonal_with_one_block_per_group():
    dense, grouped = nn.Conv2d(8, 8, 3), nn.Conv2d(8, 8, 3, groups=4)
    assert diagrams.connectivity(dense).sum() == 64
    m = diagrams.connectivity(grouped)
    assert m[0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0] and m[7].tolist() == [0] * 6 + [1, 1]
    assert m.sum() * 3 * 3 == grouped.weight.numel()       # one 3x3 kernel per dark square
    title = diagrams.draw_connectivity(grouped).axes[0].get_title()
    assert title == "4 groups: 144 weights (3×3 each)"


def test_the_function_classes_are_nested_on_the_right_only():
    left, right = diagrams.draw_function_classes().axes

    def outlines(ax):
        return [e.get_patch_transform().transform_path(e.get_path()) for e in ax.patches]

    def nested(ax):
        shapes = outlines(ax)
        return all(big.contains_points(small.vertices, radius=-1e-6).all()
                   for small, big in zip(shapes, shapes[1:], strict=False))

    assert nested(right) and not nested(left)
    assert [t.get_text() for t in right.texts][:3] == ["F1", "F2", "F3"]


def test_the_resnext_forms_show_the_input_the_join_and_the_shortcut():
    fig = diagrams.draw_resnext_forms(AggregatedTransform(256, 32, 4))
    for ax in fig.axes:
        found = [t.get_text() for t in ax.texts]
        assert "x  (256 channels)" in found and "⊕" in found and "shortcut x" in found
    fan_out = [a for a in fig.axes[0].texts if isinstance(a, matplotlib.text.Annotation)
               and a.xy[1] == 3.85]
    assert len(fan_out) == 3                        # x goes to paths 1, 2 and C


def test_a_network_coloured_by_gradient_norm_gets_its_colour_bar():
    net = rl.cifar_resnet(20)
    plain = diagrams.draw_network(net, (1, 3, 32, 32))
    assert len(plain.axes) == 1                             # no colours, no scale
    colours = {name: strip.norm_colour(1.0) for name in rl.blocks_of(net)}
    coloured = diagrams.draw_network(net, (1, 3, 32, 32), block_colours=colours)
    bar = coloured.axes[1]
    assert "log10 gradient norm" in bar.get_ylabel() and bar.get_ylim() == strip.LOG_RANGE


def test_inception_is_drawn_beside_resnexts_form_a():
    fig = diagrams.draw_inception_vs_resnext(AggregatedTransform(256, 32, 4))
    found = texts(fig)
    assert {"5×5 16→32", "3×3 max pool", "filter concatenation → 256"} <= set(found)
    assert "path 32" in found and "1×1 4→256" in found and "⊕" in found
    assert [ax.get_title() for ax in fig.axes] == [
        "Inception (Szegedy et al. 2015): 4 different branches",
        "ResNeXt, form (a): 32 identical paths, summed"]
    assert "one grouped convolution" in fig.texts[0].get_text()
