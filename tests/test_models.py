"""Blocks and builders: shapes, the skip gate, parameter counts against published figures."""

import dataclasses
import inspect

import pytest
import torch
from torch import nn

import resnet_lab as rl
from resnet_lab.nets.blocks import PadShortcut
from resnet_lab.nets.configs import config_to_dict
from resnet_lab.nets.models import named_net
from resnet_lab.training import history
from tests.reference import torchvision_resnet as tv
from tests.util import assert_value_error_naming


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# He et al. 2015, Table 6: ResNet-20/32/44/56/110 have 0.27/0.46/0.66/0.85/1.7M parameters
@pytest.mark.parametrize("depth,millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85),
                                            (110, 1.7)])
def test_cifar_parameter_counts_match_the_paper(depth, millions):
    assert round(n_params(rl.cifar_resnet(depth)) / 1e6, 2 if depth < 110 else 1) == millions


def test_plain_net_has_exactly_the_same_parameters():
    res, plain = rl.cifar_resnet(56), rl.plain_net(56)
    assert [(k, v.shape) for k, v in res.state_dict().items()] == \
           [(k, v.shape) for k, v in plain.state_dict().items()]
    assert all(b.skip == 0 for b in plain.modules() if isinstance(b, rl.ResidualBlock))


# torchvision's documented parameter counts and GFLOPS (which are multiply-adds) at 224x224
IMAGENET_COUNTS = {
    "resnet18": (11_689_512, 1.81), "resnet34": (21_797_672, 3.66),
    "resnet50": (25_557_032, 4.09), "resnet101": (44_549_160, 7.8),
    "resnet152": (60_192_808, 11.51), "resnext50_32x4d": (25_028_904, 4.23),
    "resnext101_32x8d": (88_791_336, 16.41), "wide_resnet50_2": (68_883_240, 11.4),
}


@pytest.mark.parametrize("name", IMAGENET_COUNTS)
def test_imagenet_parameter_counts_and_macs_match_torchvision_and_the_docstring(name):
    builder = getattr(rl, name)
    with torch.device("meta"):             # shapes only: no memory, no initialization
        model = builder()
    params, macs = rl.complexity(model, (1, 3, 224, 224))
    assert params == IMAGENET_COUNTS[name][0]
    assert round(macs / 1e9, 2) == IMAGENET_COUNTS[name][1]
    # the builder's help says the same: its signature and its numbers
    assert {"num_classes", "seed"} <= inspect.signature(builder).parameters.keys()
    assert f"{params / 1e6:.1f}M parameters" in " ".join(builder.__doc__.split())
    assert f"{macs / 1e9:.1f} GMACs" in builder.__doc__
    options = {f.name for f in dataclasses.fields(rl.ImageNetConfig)} - {"name", "num_classes",
                                                                          "seed"}
    assert [o for o in sorted(options) if o not in builder.__doc__] == []   # each one named


TORCHVISION = {
    "resnet18": (tv.BasicBlock, [2, 2, 2, 2], {}),
    "resnet50": (tv.Bottleneck, [3, 4, 6, 3], {}),
    "resnext50_32x4d": (tv.Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}),
    "wide_resnet50_2": (tv.Bottleneck, [3, 4, 6, 3], {"width_per_group": 128}),
}


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(name):
    torch.manual_seed(0)
    block, layers, kwargs = TORCHVISION[name]
    ref = tv.ResNet(block, layers, **kwargs).eval()
    ours = getattr(rl, name)().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)


def _block_input(channels=16, size=8):
    torch.manual_seed(0)
    return torch.randn(2, channels, size, size)


@pytest.mark.parametrize("make", [
    lambda: rl.BasicBlock(16, 16),
    lambda: rl.BasicBlock(16, 32, stride=2, shortcut="A"),
    lambda: rl.BasicBlock(16, 32, stride=2, shortcut="B"),
    lambda: rl.Bottleneck(16, 4),
    lambda: rl.Bottleneck(16, 8, stride=2, groups=4, base_width=16),
])
def test_skip_gate_is_the_lecture_equation(make):
    block = make().eval()
    x = _block_input(block.conv1.in_channels)
    with torch.no_grad():
        f = block.residual(x)
        block.skip = 0.0
        assert torch.equal(block(x), torch.relu(f))                       # plain: relu(F(x))
        block.skip = 1.0
        assert torch.equal(block(x), torch.relu(f + block.shortcut(x)))   # relu(F(x) + x)
        block.skip = 0.5
        torch.testing.assert_close(block(x), torch.relu(f + 0.5 * block.shortcut(x)))


def test_identity_shortcut_is_x_and_option_a_pads_zeros():
    x = _block_input()
    assert torch.equal(rl.BasicBlock(16, 16).shortcut(x), x)
    y = PadShortcut(2, 16)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    assert n_params(rl.BasicBlock(16, 32, stride=2, shortcut="A")) < \
        n_params(rl.BasicBlock(16, 32, stride=2, shortcut="B"))


def test_set_skip_changes_no_parameter_and_selects_stages():
    model = rl.cifar_resnet(20)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    changed = rl.set_skip(model, 0.0, blocks="layer2")
    assert changed == ["layer2.0", "layer2.1", "layer2.2"]
    assert model.layer2[1].skip == 0 and model.layer1[0].skip == 1 and model.layer3[2].skip == 1
    assert rl.set_skip(model, 0.25, blocks=["layer1.0", "layer3"]) == \
        ["layer1.0", "layer3.0", "layer3.1", "layer3.2"]
    assert len(rl.set_skip(model, 1.0)) == 9
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_flipping_skips_changes_the_output_but_not_the_weights():
    model = rl.cifar_resnet(20).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        a = model(x)
        rl.set_skip(model, 0.0)
        b = model(x)
        rl.set_skip(model, 1.0)
        torch.testing.assert_close(model(x), a)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("kwargs", [dict(preact=True), dict(norm=False), dict(init="default"),
                                    dict(zero_init_residual=True), dict(block="bottleneck"),
                                    dict(in_channels=1, width=4)])
def test_cifar_options_build_and_run(kwargs):
    depth = 29 if kwargs.get("block") == "bottleneck" else 20
    model = rl.cifar_resnet(depth, **kwargs)
    x = torch.randn(3, kwargs.get("in_channels", 3), 16, 16)
    out = model(x)
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    out.sum().backward()


def test_zero_init_residual_makes_every_block_start_as_identity_plus_relu():
    model = rl.cifar_resnet(20, zero_init_residual=True).eval()
    block = model.layer1[1]
    x = torch.relu(torch.randn(2, 16, 8, 8))
    with torch.no_grad():
        assert torch.equal(block(x), x)


def test_a_lessons_name_builds_its_net_from_the_same_draws():
    plain, res = (named_net(name, width=4, seed=0) for name in ("plain-8", "ResNet-8"))
    assert rl.is_plain(plain) and not rl.is_plain(res) and plain.config.depth == 8
    assert all(torch.equal(p, r) for p, r in zip(plain.parameters(), res.parameters(),
                                                  strict=True))


def test_norm_off_has_no_batchnorm():
    model = rl.cifar_resnet(20, norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_summary_resnet50_matches_published_figures():
    s = rl.summary(rl.resnet50(), (1, 3, 224, 224))
    assert [r.stage for r in s.rows] == ["stem", "stage 1", "stage 2", "stage 3", "stage 4",
                                         "head"]
    assert s.params == 25_557_032
    assert round(s.macs / 1e9, 1) == 4.1                       # torchvision: 4.09 GFLOPS (MACs)
    assert [r.output_shape for r in s.rows][1:5] == [(1, 256, 56, 56), (1, 512, 28, 28),
                                                    (1, 1024, 14, 14), (1, 2048, 7, 7)]
    assert "GMACs" in str(s)


def test_complexity_counts_without_touching_batchnorm_statistics():
    model = rl.cifar_resnet(8)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    params, macs = rl.complexity(model, (2, 3, 8, 8))
    assert params == sum(p.numel() for p in model.parameters())
    assert macs == rl.summary(model, (2, 3, 8, 8)).macs > 0
    assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())
    assert model.training


def test_deep_mlp_shapes_and_skip():
    plain = rl.deep_mlp(10, 32, "tanh", skip=0.0)
    assert plain(torch.randn(4, 64)).shape == (4, 10)
    assert len(rl.set_skip(plain, 1.0)) == 10


@pytest.mark.parametrize("make,kind", [
    (lambda: rl.cifar_resnet(32, width=8, skip=0.5, seed=3), rl.CifarConfig),
    (lambda: rl.resnet18(num_classes=7, seed=3), rl.ImageNetConfig),
    (lambda: rl.deep_mlp(6, 16, "tanh", skip=1.0, seed=3), rl.MLPConfig),
])
def test_a_model_carries_its_config_and_build_makes_the_same_net(make, kind):
    model = make()
    assert isinstance(model.config, kind)
    for config in (model.config, config_to_dict(model.config)):
        again = rl.build(config)
        assert again.config == model.config
        assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                     model.state_dict().values(), strict=True))


def test_builders_take_a_config_or_its_fields():
    config = rl.CifarConfig(depth=44, width=4, skip=0.0)
    assert rl.cifar_resnet(config).config == config == rl.cifar_resnet(44, width=4,
                                                                        skip=0.0).config
    assert rl.cifar_resnet(config, width=8).config.width == 8          # a field replaced
    assert_value_error_naming(lambda: rl.cifar_resnet(20, colour="red"),
                              ["colour='red'", "width", "seed"])


def test_a_seed_fixes_the_weights_and_leaves_the_global_random_state_alone():
    torch.manual_seed(1)
    state = torch.random.get_rng_state()
    a, b = rl.cifar_resnet(20, seed=5), rl.plain_net(20, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(rl.cifar_resnet(20, seed=6).conv1.weight, a.conv1.weight)


def test_depth_rules_live_in_checks():
    from resnet_lab.nets import checks

    assert checks.depths("basic")[:4] == (8, 14, 20, 26) and checks.depths("basic")[-1] == 110
    assert checks.depths("bottleneck")[:3] == (11, 20, 29)
    assert checks.blocks_per_stage(56) == 9 and checks.blocks_per_stage(56, "bottleneck") == 6
    assert_value_error_naming(lambda: checks.blocks_per_stage(57), ["depth=57", "6n+2"])
    assert_value_error_naming(lambda: checks.blocks_per_stage(21, "bottleneck"),
                              ["depth=21", "9n+2"])


def cifar_preact_params(n: int, width: int = 16, classes: int = 10) -> int:
    """He et al. 2016's CIFAR layout, counted by hand: conv1, then 3 stages of n units
    BN-ReLU-conv-BN-ReLU-conv (option A shortcuts: no parameters), a final BN, the fc."""
    total, channels = 3 * width * 9, width
    for stage in range(3):
        out = width * 2 ** stage
        for _ in range(n):
            total += 2 * channels + channels * out * 9 + 2 * out + out * out * 9
            channels = out
    return total + 2 * channels + channels * classes + classes


@pytest.mark.parametrize("depth", [20, 110])
def test_preact_nets_follow_the_identity_mappings_layout_and_use_every_parameter(depth):
    model = rl.cifar_resnet(depth, preact=True)
    assert n_params(model) == cifar_preact_params((depth - 2) // 6)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("call,words", [
    (lambda: rl.cifar_resnet(21), ["depth=21", "6n+2"]),
    (lambda: rl.cifar_resnet(20, shortcut="C"), ["shortcut='C'", "'A', 'B'"]),
    (lambda: rl.cifar_resnet(20, init="xavier"), ["init='xavier'", "'he'"]),
    (lambda: rl.cifar_resnet(20, skip=1.5), ["skip=1.5", "[0, 1]"]),
    (lambda: rl.cifar_resnet(20, block="fancy"), ["block='fancy'", "'basic'"]),
    (lambda: rl.cifar_resnet(20, width=0), ["width=0"]),
    (lambda: rl.BasicBlock(16, 16, groups=2), ["groups=2", "Bottleneck"]),
    (lambda: rl.Bottleneck(64, 64, groups=0), ["groups=0"]),
    (lambda: rl.Bottleneck(64, 3, base_width=4), ["planes=3", "base_width=4"]),
    (lambda: rl.deep_mlp(activation="swish"), ["activation='swish'", "'sigmoid'"]),
    (lambda: rl.deep_mlp(depth=0), ["depth=0"]),
    (lambda: rl.set_skip(rl.cifar_resnet(20), 0.0, blocks="layer9"), ["blocks='layer9'",
                                                                      "layer1"]),
    (lambda: rl.set_skip(rl.cifar_resnet(20), -0.1), ["skip=-0.1"]),
    (lambda: rl.summary(rl.cifar_resnet(20), (3, 0)), ["input_size"]),
    (lambda: rl.complexity(rl.cifar_resnet(20), (3,)), ["input_size"]),
    (lambda: named_net("resnet-20"), ["name='resnet-20'", "'plain-<depth>'"]),
    (lambda: named_net("plain-x"), ["name='plain-x'", "'ResNet-<depth>'"]),
])
def test_bad_input_names_the_argument(call, words):
    assert_value_error_naming(call, words)


def test_bad_skip_on_a_built_block_is_refused():
    block = rl.BasicBlock(16, 16)
    with pytest.raises(ValueError, match="skip=2"):
        block.skip = 2
    assert block.skip == 1.0


def test_a_net_built_from_its_config_keeps_it_and_saves_whole(tmp_path):
    config = rl.CifarConfig(8, width=4, skip=0.0)
    model = rl.ResNet(config)                      # nanoGPT's GPT(config): no builder needed
    assert model.config is config and rl.is_plain(model)
    path = history.save_run(tmp_path / "run.pt", {"net": model}, {})
    loaded, _ = history.load_run(path)
    assert loaded["net"].config == config
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded["net"].state_dict()[key], value, rtol=0, atol=0)
    mlp = rl.DeepMLP(rl.MLPConfig(depth=3, width=8))
    assert mlp.config.depth == 3 and len(mlp.blocks) == 3
    with pytest.raises(ValueError, match="config=MLPConfig.* is not allowed; give a CifarConfig"):
        rl.ResNet(rl.MLPConfig())
    # Xie et al.'s (C, d) variant of ResNet-50 is ResNeXt-50 (32x4d), parameter for parameter
    with torch.device("meta"):
        variant = rl.ResNet(rl.ImageNetConfig("resnet50", groups=32, width_per_group=4))
    assert n_params(variant) == IMAGENET_COUNTS["resnext50_32x4d"][0]
