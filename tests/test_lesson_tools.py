"""The lessons' tools: ResNeXt's three forms, loss slices, block deletion, modes and verdicts."""

import pytest
import torch

import resnet_lab as rl
from resnet_lab import ensembles, landscape, lesson
from resnet_lab.cardinality import AggregatedTransform


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
    assert lesson.settings().mode == expected
    monkeypatch.setenv("RESNET_LAB_MODE", "full")
    assert lesson.settings().mode == "full"
    assert lesson.settings("quick").size == 16
    with pytest.raises(ValueError, match="mode='slow'"):
        lesson.settings("slow")
    capsys.readouterr()
    lesson.verdict("x", True, "a > b")
    lesson.verdict("y", False, "c > d")
    assert capsys.readouterr().out.splitlines() == ["VERDICT x: a > b -> shown",
                                                    "VERDICT y: c > d -> NOT shown"]


def test_full_mode_data_falls_back_to_synthetic_offline(tmp_path, monkeypatch, capsys):
    from resnet_lab import data

    monkeypatch.setattr(data, "CACHE", tmp_path)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"corrupt")
    small = lesson.Settings("full", size=8, width=4, steps=1, batch_size=8, dataset="cifar10",
                            n_train=64)
    images = lesson.lesson_data(small)
    assert images.name == "synthetic" and images.x_train.shape == (64, 3, 8, 8)
    assert "CIFAR-10 not available" in capsys.readouterr().out
