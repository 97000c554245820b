"""The notes' last points as code paths: the backbone probe, ResNeXt against ResNet over seeds,
and their bar chart (the statistics themselves are bench_verdicts' to measure)."""

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

import resnet_lab as rl
from resnet_lab import lessons
from resnet_lab.lessons.experiments import backbone, resnext
from resnet_lab.pictures import bars
from resnet_lab.training import data

matplotlib.use("Agg")

TINY = lessons.Settings("quick", size=8, width=2, steps=4, batch_size=16,
                       datasets=("synthetic",), n_train=80)


@pytest.fixture(scope="module")
def images():
    return data.synthetic(80, 40, size=8, channels=1)


def test_split_classes_keeps_each_half_and_renumbers_it(images):
    seen, unseen = backbone.split_classes(images, 5)
    assert seen.classes == images.classes[:5] and unseen.classes == images.classes[5:]
    assert len(seen.x_train) + len(unseen.x_train) == len(images.x_train)
    assert set(unseen.y_test.tolist()) <= set(range(5)) and unseen.y_train.min() == 0
    assert torch.equal(unseen.x_train, images.x_train[images.y_train >= 5])
    with pytest.raises(ValueError, match="seen=10"):
        backbone.split_classes(images, 10)


def test_the_probe_reads_what_features_carry_and_only_that():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    x = torch.randn(600, 4, generator=g)
    informative = x + 6 * torch.nn.functional.one_hot(y, 4).float()
    assert backbone.linear_probe(informative[:400], y[:400], informative[400:], y[400:]) < 0.05
    assert backbone.linear_probe(x[:400], y[:400], x[400:], y[400:]) > 0.4   # chance: 2/3


def test_the_pooled_features_are_the_fc_layers_input(images):
    net = rl.cifar_resnet(8, width=2, in_channels=1, seed=0)
    features = backbone.pooled_features(net, images.x_test[:5])
    net.eval()
    assert torch.allclose(net.fc(features), net(images.x_test[:5]), atol=1e-5)
    assert features.shape == (5, 8)


def test_backbone_probes_freeze_three_nets_and_give_a_verdict(images):
    probes = backbone.backbone_probes(TINY, images, depth=8)
    errors = probes.values
    trained, plain = probes.changes.values()
    assert set(trained.changed) == {"steps"} and trained.same_weights, str(trained)
    assert set(plain.changed) == {"skip"} and plain.same_weights, str(plain)
    assert list(errors) == ["ResNet-8, random weights", "ResNet-8, trained", "plain-8, trained"]
    assert all(0 <= e <= 1 for e in errors.values())
    v = backbone.features_transfer({"ResNet-8, random weights": 0.4, "ResNet-8, trained": 0.1,
                                    "plain-8, trained": 0.2})
    assert math.isclose(v.margin, 0.4 / 0.1) and v.shown


def test_the_deep_backbone_verdict_reads_the_two_trained_nets_only():
    """The 56-layer probe's claim compares the trained ResNet with the trained plain net (one
    change: the skip); the random net's error is beside it, not in it."""
    errors = {"ResNet-56, random weights": 0.05, "ResNet-56, trained": 0.2,
              "plain-56, trained": 0.5}
    v = backbone.deep_backbones_need_skips(errors)
    assert math.isclose(v.margin, 0.5 / 0.2 / backbone.DEEPER) and v.shown
    assert not backbone.deep_backbones_need_skips({**errors, "plain-56, trained": 0.21}).shown


def test_a_cifar_net_takes_resnexts_groups_only_with_bottlenecks():
    net = rl.cifar_resnet(11, block="bottleneck", width=8, groups=4, width_per_group=24)
    assert net.layer1[0].conv2.groups == 4 and net.layer1[0].conv2.in_channels == 12
    assert rl.build(net.config).layer3[0].conv2.groups == 4
    with pytest.raises(ValueError, match="groups and width_per_group need block='bottleneck'"):
        rl.cifar_resnet(20, groups=4)
    with pytest.raises(ValueError, match="groups=0"):
        rl.cifar_resnet(11, block="bottleneck", groups=0)


def test_cardinality_runs_train_the_pair_once_per_seed(images):
    runs = resnext.cardinality_runs(TINY, images, seeds=(0, 1))
    errors, (change,) = runs.values, runs.changes.values()
    assert set(change.changed) == {"groups", "width_per_group"}, str(change)
    assert list(errors) == list(resnext.LAB_PAIR) and all(len(v) == 2 for v in errors.values())
    budget = resnext.lab_budget(resnext.lab_pair(1, 10), (1, 1, 8, 8))
    assert set(budget) == set(resnext.LAB_PAIR.values())


def test_the_pair_is_read_seed_by_seed_with_a_95_percent_interval():
    """Gaps +1, +2, +3 points: mean 2, sd 1, so the interval is 2 ± 4.303 / sqrt(3)."""
    p = resnext.paired_gaps({"ResNet": [0.10, 0.10, 0.10], "ResNeXt": [0.11, 0.12, 0.13]})
    assert math.isclose(p.mean, 2) and math.isclose(p.high - p.mean, 4.303 / math.sqrt(3))
    assert "+1.00, +2.00, +3.00 points; mean +2.00" in resnext.seed_by_seed(
        {"ResNet": [0.10, 0.10, 0.10], "ResNeXt": [0.11, 0.12, 0.13]})
    with pytest.raises(ValueError, match="errors: 2 to 11 seeds"):
        resnext.paired_gaps({"ResNet": [0.1], "ResNeXt": [0.1]})


def test_the_test_images_widen_the_interval_by_their_own_luck():
    """Two nets that disagree on 2 of 4 images, the same on every seed: the seeds add nothing,
    the images 1.96 x the standard error of the per-image difference (points)."""
    wrong = {"ResNet": np.array([[1, 0, 0, 0]] * 3, bool),
             "ResNeXt": np.array([[0, 1, 0, 0]] * 3, bool)}
    p = resnext.paired_gaps({"ResNet": [0.25] * 3, "ResNeXt": [0.25] * 3}, wrong)
    per_image = np.array([-100, 100, 0, 0])
    assert p.seeds_half == 0 and math.isclose(p.images_half, 1.96 * per_image.std(ddof=1) / 2)
    assert math.isclose(p.high, p.images_half) and math.isclose(p.low, -p.images_half)


def reference_of(gaps, spread=0.0, n=10_000):
    """A Reference of 8 seeds: ResNet at 20 % error, ResNeXt `gaps` points off it per seed;
    the two nets disagree on a share `spread` of the n test images, half each way."""
    resnet = np.zeros((len(gaps), n), bool)
    resnet[:, : n // 5] = True                                     # 20 % wrong
    resnext_wrong = resnet.copy()
    k = int(spread * n / 2)
    resnext_wrong[:, n // 5: n // 5 + k] = True                   # k images it alone gets wrong
    resnext_wrong[:, :k] = False                                   # and k it alone gets right
    errors = {"ResNet": [0.2] * len(gaps), "ResNeXt": [0.2 + g / 100 for g in gaps]}
    return resnext.Reference(errors, "", {}, {"ResNet": resnet, "ResNeXt": resnext_wrong})


def test_keeping_up_shows_only_when_the_interval_rules_out_a_loss_of_xies_share():
    """ResNet at 20 % error: Xie et al.'s share for the 4 x 24d template (5.4 %) is 1.09
    points. Gaps of ±0.1 points over 8 seeds, on nets that disagree on 2 % of 10,000 test
    images, keep up, and so does a ResNeXt 3 points better; one 3 points worse does not, nor
    do noise of ±3 points or nets that disagree on half of a test set too small to tell."""
    claim = resnext.resnext_keeps_up
    assert math.isclose(100 * resnext.XIE_GAIN, 100 * (1 - 22.6 / 23.9))
    assert claim(reference_of([0.1, -0.1] * 4, spread=0.02)).shown
    assert claim(reference_of([-3.1, -2.9] * 4)).shown
    assert not claim(reference_of([3.1, 2.9] * 4)).shown
    assert not claim(reference_of([3, -3] * 4)).shown
    assert not claim(reference_of([0.1, -0.1] * 4, spread=0.5, n=400)).shown


def test_a_reference_run_reads_back_what_the_runs_measured_seed_by_seed(images, tmp_path):
    resnext.write_reference(tmp_path, TINY, images, seeds=(1, 0), steps=3)
    reference = resnext.load_reference(tmp_path)
    direct = resnext.cardinality_runs(TINY, images, seeds=(0, 1), steps=3)
    assert reference.errors == direct.values      # seed order, each seed's pair retrained alike
    for name, wrong in reference.wrong.items():   # which images: as many as its error says
        assert wrong.shape == (2, 40) and np.allclose(wrong.mean(axis=1), reference.errors[name])
    assert reference.how.startswith("2 seeds (0-1), 3 steps at batch 16 on synthetic")
    gaps = [100 * (b - a) for a, b in zip(*reference.errors.values(), strict=True)]
    line = resnext.seed_by_seed(reference.errors)
    assert f"lower on {sum(g < 0 for g in gaps)} of 2 seeds" in line and f"{gaps[0]:+.2f}" in line
    # the lesson's run against the reference, from the setups the files keep: only the steps
    shorter = resnext.cardinality_runs(TINY, images, seeds=(0,))
    changes = resnext.against_reference(shorter, reference)
    assert changes.count("changed:  steps (2 → 3)") == 2, changes
    assert "seed 0 for both: all" in changes
    with pytest.raises(FileNotFoundError, match="no seed"):
        resnext.load_reference(tmp_path / "empty")


def test_the_committed_reference_run_is_of_the_lessons_pair():
    """Lesson 4 reads docs/resnext: a renamed or rebuilt pair would leave it stale."""
    errors, how, setups, wrong = resnext.load_reference(
        Path(__file__).parents[1] / "docs" / "resnext")
    assert list(errors) == list(resnext.LAB_PAIR) and len({len(v) for v in errors.values()}) == 1
    assert list(setups) == list(resnext.LAB_PAIR)
    assert "on fashion_mnist (20,000 training images, 16x16; tested on all 10,000" in how
    for name, w in wrong.items():                  # the images each net got wrong, its error
        assert np.allclose(w.mean(axis=1), errors[name])


def test_a_bar_chart_draws_one_bar_per_name_and_the_seeds_spread():
    fig = bars.bar_chart({"one run": 0.3, "three seeds": [0.2, 0.25, 0.3]}, title="t")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.get_xticklabels()] == [
        "one run", "three seeds"]
    assert math.isclose(ax.patches[1].get_height(), 25.0)
    assert {t.get_text() for t in ax.texts} == {"30.0", "25.0"}
    with pytest.raises(ValueError, match="values"):
        bars.bar_chart({})
