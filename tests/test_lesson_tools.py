"""The lessons' tools: ResNeXt's three forms, loss slices, block deletion, modes and verdicts."""

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

import resnet_lab as rl
from resnet_lab import lessons
from resnet_lab.instruments import landscape
from resnet_lab.lessons import experiments, verdicts
from resnet_lab.nets import ensembles
from resnet_lab.nets.cardinality import AggregatedTransform
from resnet_lab.training import data, train
from tests.test_data import make_cifar_archive, make_fashion_folder

ROOT = Path(__file__).parent.parent

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FASHION_FILE = "t10k-labels-idx1-ubyte.gz"


def test_three_resnext_forms_are_equal_and_match_the_bottleneck_convs():
    torch.manual_seed(0)
    block = AggregatedTransform(64, cardinality=8, width=4)
    x = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        a, b, c = block.paths(x), block.concat(x), block.grouped(x)
    torch.testing.assert_close(a, c, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b, c, atol=1e-5, rtol=1e-5)
    assert block.conv.groups == 8 and block.conv.weight.shape == (32, 4, 3, 3)
    # a ResNeXt bottleneck's 3x3 conv is exactly such a grouped conv
    assert rl.Bottleneck(256, 64, groups=32, base_width=4).conv2.weight.shape == (128, 4, 3, 3)


def test_path_i_uses_its_own_slice_of_weights():
    block = AggregatedTransform(16, cardinality=4, width=2)
    w1, w2, w3 = block.path_weights(3)
    assert torch.equal(w1, block.reduce.weight[6:8])
    assert torch.equal(w3, block.restore.weight[:, 6:8])
    assert w2.shape == (2, 2, 3, 3)


def test_filter_normalized_direction_matches_filter_norms():
    model = rl.cifar_resnet(8, width=4)
    direction = landscape.filter_normalized_direction(model, seed=1)
    for p, d in zip(model.parameters(), direction, strict=True):
        if p.dim() > 1:
            torch.testing.assert_close(d.flatten(1).norm(dim=1), p.flatten(1).norm(dim=1),
                                       rtol=1e-4, atol=1e-6)
        else:
            assert not d.any()                         # biases and BN parameters stay put
    again = landscape.filter_normalized_direction(model, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(direction, again, strict=True))


def test_loss_surface_restores_the_model_and_is_centred():
    torch.manual_seed(0)
    model = rl.cifar_resnet(8, width=4)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    d = [landscape.filter_normalized_direction(model, 0)]
    one = landscape.loss_surface(model, x, y, d, [-1.0, 0.0, 1.0])
    two = landscape.loss_surface(model, x, y, d + [landscape.filter_normalized_direction(model, 1)],
                                 [-1.0, 0.0, 1.0])
    assert one.shape == (3,) and two.shape == (3, 3)
    assert one[1] == pytest.approx(two[1, 1])          # both centres are the model itself
    assert one[0] != pytest.approx(one[1])
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_lesson_tools_take_cpu_data_for_a_model_on_any_device(device):
    """The device rule: a lesson trains on a GPU and passes CPU tensors to the tools."""
    model = rl.cifar_resnet(8, width=4, seed=0).to(device)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    d = [landscape.filter_normalized_direction(model, 0)]
    assert all(t.device.type == rl.pick_device(device).type for t in d[0])
    assert landscape.loss_surface(model, x, y, d, [-0.5, 0.0, 0.5]).shape == (3,)
    with ensembles.without_block(model, "layer1.0"):
        loss, error = train.evaluate(model, x, y)
    assert 0 <= error <= 1 and loss > 0


def test_path_lengths_are_binomial():
    assert ensembles.path_lengths(3) == [1, 3, 3, 1]
    assert sum(ensembles.path_lengths(27)) == 2**27


def test_deleting_a_block_is_temporary_and_identity():
    model = rl.cifar_resnet(20).eval()
    names = ensembles.deletable_blocks(model)
    assert len(names) == 7 and "layer2.0" not in names        # downsampling blocks stay
    x = torch.relu(torch.randn(2, 16, 8, 8))
    block = model.layer1[1]
    with ensembles.without_block(model, "layer1.1"):
        assert torch.equal(model.layer1[1](x), x)
    assert model.layer1[1] is block
    with pytest.raises(ValueError, match="name='layer2.0'"), \
            ensembles.without_block(model, "layer2.0"):
        pass


def test_modes_and_verdicts(capsys, monkeypatch):
    monkeypatch.delenv("RESNET_LAB_MODE", raising=False)
    expected = "full" if torch.cuda.is_available() else "quick"
    assert lessons.settings().mode == expected
    monkeypatch.setenv("RESNET_LAB_MODE", "full")
    assert lessons.settings().mode == "full"
    assert lessons.settings("quick").size == 16
    with pytest.raises(ValueError, match="mode='slow'"):
        lessons.settings("slow")
    capsys.readouterr()
    lessons.verdict(lessons.Verdict("x", 1.5, "a > b"))
    lessons.verdict(lessons.Verdict("y", 1.0, "c > d"))        # exactly at the threshold: not shown
    assert capsys.readouterr().out.splitlines() == ["VERDICT x: a > b -> shown (margin 1.5)",
                                                    "VERDICT y: c > d -> NOT shown (margin 1)"]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty data cache, no Debian copy of Fashion-MNIST, and no network."""
    def no_network(url, path, md5=None, **kwargs):
        raise RuntimeError(f"could not download {url} (offline in this test)")

    monkeypatch.setattr(data, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path / "no-debian-copy")
    monkeypatch.setattr(data, "download", no_network)
    monkeypatch.delenv("RESNET_LAB_DATASET", raising=False)
    return tmp_path / "cache"


FULL_SMALL = lessons.Settings("full", size=32, width=4, steps=1, batch_size=8,
                             datasets=lessons.FULL.datasets, n_train=16)


def test_full_mode_prefers_cifar10_when_it_is_there(offline, capsys):
    offline.mkdir()
    make_cifar_archive(offline / "c.tar.gz")
    with tarfile.open(offline / "c.tar.gz") as tar:
        tar.extractall(offline, filter="data")
    images = lessons.lesson_data(FULL_SMALL)
    assert images.name == "cifar10" and images.x_train.shape == (16, 3, 32, 32)
    assert "data: cifar10" in capsys.readouterr().out


def test_full_mode_falls_back_to_fashion_mnist_and_says_why(offline, capsys):
    make_fashion_folder(offline / "fashion-mnist")
    images = lessons.lesson_data(FULL_SMALL)
    assert images.name == "fashion_mnist" and images.x_train.shape == (16, 1, 32, 32)
    out = capsys.readouterr().out
    assert "data: fashion_mnist" in out and "cifar10 not available" in out


def test_full_mode_uses_the_built_in_set_last(offline, capsys):
    images = lessons.lesson_data(FULL_SMALL)
    assert images.name == "synthetic" and images.x_train.shape == (16, 3, 32, 32)
    out = capsys.readouterr().out
    assert "cifar10 not available" in out and "fashion_mnist not available" in out


def test_the_dataset_can_be_forced(monkeypatch, offline, capsys):
    monkeypatch.setenv("RESNET_LAB_DATASET", "synthetic")
    assert lessons.settings("full").datasets == ("synthetic",)
    monkeypatch.setenv("RESNET_LAB_DATASET", "mnist")
    with pytest.raises(ValueError, match="RESNET_LAB_DATASET='mnist'"):
        lessons.settings("quick")


def test_fashion_mnist_is_padded_not_stretched_to_32(tmp_path):
    make_fashion_folder(tmp_path)
    raw = data.fashion_mnist(tmp_path, size=28, download=False)
    padded = data.fashion_mnist(tmp_path, size=32, download=False)
    assert padded.shape == (1, 32, 32)
    border = padded.x_train[:, :, :2, :]                      # the padding: one value, the
    assert torch.allclose(border, border.flatten()[0])         # normalised zero
    assert raw.x_train.shape[-1] == 28


def hidden_solution(summary: str) -> str:
    """The code of a solution hidden in lesson 3 under <summary>`summary`</summary>."""
    notebook = json.loads((NOTEBOOKS / "03_resnet_architectures.ipynb").read_text())
    for cell in notebook["cells"]:
        text = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and f"<summary>{summary}</summary>" in text:
            return text.split("```python\n")[1].split("```")[0]
    raise AssertionError(f"no solution {summary!r} in lesson 3")


def defined(code: str) -> dict:
    namespace = {"torch": torch, "nn": torch.nn}
    exec(compile(code, "<lesson 3 solution>", "exec"), namespace)   # noqa: S102 - our own code
    return namespace


RESNET18 = "Solution (click): MyBasicBlock and MyResNet18"
BOTTLENECK = "Solution (click): MyBottleneck"


def test_the_hidden_resnet18_solution_passes_its_check(capsys):
    assert lessons.check_resnet18(defined(hidden_solution(RESNET18))["MyResNet18"])
    assert "✓ same parameters, same names, same outputs" in capsys.readouterr().out


@pytest.mark.parametrize("old,new,words", [
    ("return self.relu(out + identity)", "return self.relu(out)", "outputs differ"),  # no skip
    ("self.bn2 = nn.BatchNorm2d(planes)", "self.bn2 = nn.Identity()", "parameters"),
    ("nn.Conv2d(3, 64, 7, 2, 3", "nn.Conv2d(3, 64, 3, 2, 1", "wrong shape"),
    ("self.fc = nn.Linear", "self.head = nn.Linear", "names differ"),
])
def test_a_wrong_resnet18_fails_its_check_and_says_why(capsys, old, new, words):
    code = hidden_solution(RESNET18)
    assert old in code
    assert not lessons.check_resnet18(defined(code.replace(old, new))["MyResNet18"])
    assert words in capsys.readouterr().out


def test_the_bottleneck_check_passes_the_solution_and_fails_a_wrong_one(capsys):
    code = hidden_solution(BOTTLENECK)
    assert lessons.check_bottleneck(defined(code)["MyBottleneck"])
    relu_before_add = code.replace("out = self.bn3(self.conv3(out))",
                                   "out = self.relu(self.bn3(self.conv3(out)))")
    assert not lessons.check_bottleneck(defined(relu_before_add)["MyBottleneck"])
    stride_on_1x1 = code.replace("nn.Conv2d(inplanes, planes, 1, bias=False)",
                                 "nn.Conv2d(inplanes, planes, 1, stride, bias=False)").replace(
        "nn.Conv2d(planes, planes, 3, stride, 1", "nn.Conv2d(planes, planes, 3, 1, 1")
    assert not lessons.check_bottleneck(defined(stride_on_1x1)["MyBottleneck"])


def test_an_unwritten_exercise_says_so_instead_of_failing(capsys):
    class Stub(torch.nn.Module):
        def __init__(self, *args):
            raise NotImplementedError("write it")

    assert not lessons.check_resnet18(Stub) and not lessons.check_bottleneck(Stub)
    assert "not written yet (write it)" in capsys.readouterr().out


def test_the_margins_file_names_exactly_the_claims_the_lessons_make():
    """bench_verdicts' committed summary, which the lessons print under each verdict, covers
    every claim function, and names none that the code no longer has."""
    import resnet_lab.lessons.experiments  # noqa: F401  (registers every claim function)

    measured = json.loads(lessons.MARGINS_FILE.read_text())["verdicts"]
    assert set(measured) == set(lessons.CLAIMS)
    assert all(m["runs"] >= 1 and "/" in m["shown"] for m in measured.values())


def test_a_claims_verdict_prints_its_measured_spread_below_it(capsys, monkeypatch, tmp_path):
    margins = tmp_path / "margins.json"
    margins.write_text(json.dumps({"verdicts": {"toy": {
        "runs": 20, "over": "5 seed(s) x 2 data sets", "shown": "20/20", "min": "1.3",
        "median": "2", "by_data": {"fashion_mnist": {"min": "1.3", "median": "1.5"},
                                    "synthetic": {"min": "4", "median": "6"}}}}}))
    monkeypatch.setattr(verdicts, "MARGINS_FILE", margins)

    @lessons.claim
    def toy(x: float) -> lessons.Verdict:
        return lessons.Verdict("toy claim", x, f"measured {x}")

    v = toy(1.5)
    assert v.name == "toy" and lessons.CLAIMS.pop("toy")
    lessons.verdict(v)
    assert capsys.readouterr().out.splitlines() == [
        "VERDICT toy claim: measured 1.5 -> shown (margin 1.5)",
        "  spread over 20 runs of bench_verdicts (5 seed(s) x 2 data sets): shown in 20/20, "
        "margin fashion_mnist min 1.3, median 1.5; synthetic min 4, median 6"]
    margins.write_text(json.dumps({"verdicts": {"toy": {
        "runs": 2, "over": "1 seed(s) x 2 CPU kernel set(s)", "shown": "2/2", "min": "exact",
        "median": "exact", "max": "exact"}}}))
    assert verdicts.spread("toy") == ("  spread over 2 runs of bench_verdicts (1 seed(s) x 2 CPU "
                                      "kernel set(s)): shown in 2/2, margin exact in every run")


def test_bench_verdicts_summarizes_the_rows_of_an_earlier_run(tmp_path):
    """`bench_verdicts --summarize` writes the margins file the lessons read from rows alone."""
    rows, out = tmp_path / "rows.jsonl", tmp_path / "margins.json"
    rows.write_text("".join(json.dumps({
        "kernel": kernel, "seed": 0, "dataset": "synthetic", "lesson": "1", "name": "toy",
        "claim": "toy claim", "margin": margin, "evidence": "-"}) + "\n"
        for kernel, margin in (("default", 2.0), ("avx2", 1e40)))
        + json.dumps({"kernel": "default", "seed": 0, "dataset": "fashion_mnist", "lesson": "1",
                      "name": "toy", "claim": "toy claim", "margin": 3.0, "evidence": "-"}) + "\n"
        + "".join(json.dumps({"kernel": kernel, "seed": 0, "dataset": "exact", "lesson": "3",
                              "name": "counted", "claim": "exact claim", "margin": 2.5,
                              "evidence": "-"}) + "\n" for kernel in ("default", "avx2")))
    subprocess.run([sys.executable, "benchmarks/bench_verdicts.py", "--summarize", str(rows),
                    "--margins", str(out)], check=True, capture_output=True, cwd=ROOT)
    toy = json.loads(out.read_text())["verdicts"]["toy"]
    assert (toy["shown"], toy["min"], toy["median"]) == ("3/3", "2", "3")
    assert toy["over"] == "1 seed(s) x fashion_mnist and synthetic x 2 CPU kernel set(s)"
    assert toy["by_data"] == {"fashion_mnist": {"min": "3", "median": "3"},
                              "synthetic": {"min": "2", "median": "unbounded"}}
    assert toy["max"] != "2"
    counted = json.loads(out.read_text())["verdicts"]["counted"]    # no seed changes an exact check
    assert counted["over"] == "2 CPU kernel set(s); no seed, as its numbers are exact or a " \
        "committed run's"


def test_layer_learning_reads_the_growth_from_the_seed_and_the_gradient_relative_to_the_weights():
    """Lesson 1's early-layer measurement: each layer's weights' norm over its initial one
    (rebuilt from the net's config and seed, not kept), and the median of its recorded
    gradient norms over its final weights' norm."""
    images = data.synthetic(256, 64, size=8, channels=1, seed=0)
    nets = {"plain-8": rl.cifar_resnet(8, width=2, in_channels=1, skip=0.0, seed=0)}
    runs = train.compare(nets, images, steps=4, batch_size=32, eval_samples=32)
    net, h = nets["plain-8"], runs["plain-8"]
    learning = experiments.layer_learning(net, h, last=2)
    assert list(learning) == h.layers and len(h.grad_norms) == 4
    w0 = rl.cifar_resnet(8, width=2, in_channels=1, skip=0.0, seed=0).conv1.weight
    w = net.conv1.weight.detach()
    growth, relative = learning["conv1"]
    assert growth != 1.0 and math.isclose(growth, (w.norm() / w0.norm()).item(), rel_tol=1e-6)
    median = np.median([row[h.layers.index("conv1")] for row in h.grad_norms[-2:]])
    assert math.isclose(relative, median / w.norm().item(), rel_tol=1e-6)


def test_the_early_layer_verdict_compares_the_thirds_of_both_plain_nets():
    layers = {"plain-20": {f"l{i}": (1.0, 0.02) for i in range(6)},
              "plain-56": {f"l{i}": (1.0, 0.02 if i >= 2 else 0.0002) for i in range(6)}}
    assert experiments.by_thirds([0.0002, 0.0002, 0.02, 0.02, 0.02, 0.02]) == [0.0002, 0.02, 0.02]
    v = experiments.deep_plain_early_layers_slow(layers)
    assert math.isclose(v.margin, min(100 / experiments.SLOWER, experiments.LEVEL / 1.0))
    assert v.shown
    layers["plain-20"]["l0"] = layers["plain-20"]["l1"] = (1.0, 0.002)    # plain-20 slow too
    assert not experiments.deep_plain_early_layers_slow(layers).shown


def test_the_default_init_mlp_vanishes_because_its_biases_hold_the_signal_up():
    """Lesson 1's answer: the default init shrinks the gradient at every layer, and its biases
    keep the forward signal from shrinking with it; with the biases at 0 the two shrink
    together and cancel in the weights' gradients, so the first/last ratio is healthy."""
    found = experiments.bias_control(seed=0)
    (default, kept), (no_biases, no_bias_kept), (he, _) = found.values()
    assert [rl.regime(p) for p in (default, no_biases, he)] == ["vanishing", "healthy", "healthy"]
    assert kept > 1e3 * no_bias_kept                       # the biases hold the signal up


def test_shallow_plain_stacks_learn_the_identity_the_deep_one_does_not():
    """Lesson 2's positive control: the plain identity stack's blocks, 2 of them, learn to copy
    their input in the steps in which the 20-block stack stays at the error of answering 0."""
    shallow = experiments.shallow_identity_fits(depths=(2,), steps=300)["plain, 2 blocks"]
    plain = {"plain": experiments.identity_stacks(seed=0)["plain"]}
    deep = experiments.identity_fits(seed=0, stacks=plain)["plain"]
    assert shallow[-1] < shallow[0] / 3 and deep[-1] > 0.9 * deep[0]
