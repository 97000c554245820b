"""Gradient-flow instruments: right numbers, no leftovers, and the physics of depth."""

import gc
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import resnet_lab as rl
from resnet_lab.instruments.hooks import (
    ActivationStats,
    GradientNorms,
    UpdateRatios,
    gradient_profile,
    layer_norms,
    relative_weight_change,
    scaled_norm,
    weight_snapshot,
)


def hook_count(model: nn.Module) -> int:
    """Hooks on the modules and on the parameters (autograd tensor hooks) together."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules()) + sum(len(p._backward_hooks or {})
                                               for p in model.parameters())


def step(model, x, y, opt=None):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    if opt is not None:
        opt.step()
        opt.zero_grad()
    return loss


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))


def test_norms_equal_the_gradients_after_each_backward(batch):
    model = rl.cifar_resnet(20)
    with GradientNorms(model) as norms:
        step(model, *batch)
        expected = [model.get_submodule(n).weight.grad.norm().item() for n in norms.names]
        model.zero_grad()
        step(model, *batch)
    values = norms.values()
    assert values.shape == (2, 20) and norms.names[0] == "conv1" and norms.names[-1] == "fc"
    assert "layer2.0.conv1" in norms.names and not any("downsample" in n for n in norms.names)
    np.testing.assert_allclose(values[0], expected, rtol=1e-5)
    np.testing.assert_allclose(values[1], expected, rtol=1e-5)   # same batch, same grads
    assert norms.to_dict()["step"] == [0, 1]


class WithAux(nn.Module):
    """A model that returns a tuple (logits, auxiliary logits), as Inception does."""

    def __init__(self):
        super().__init__()
        self.net = rl.cifar_resnet(8)
        self.aux = nn.Linear(3 * 16 * 16, 10)

    def forward(self, x):
        return self.net(x), self.aux(x.flatten(1))


def test_norms_are_recorded_for_a_model_that_returns_a_tuple(batch):
    model = WithAux()
    with GradientNorms(model) as norms:
        out, aux = model(batch[0])
        (F.cross_entropy(out, batch[1]) + F.cross_entropy(aux, batch[1])).backward()
    assert norms.values().shape == (1, len(norms.names)) and norms.names[-1] == "aux"
    np.testing.assert_allclose(norms.values()[0, -1], model.aux.weight.grad.norm().item(),
                               rtol=1e-5)
    assert hook_count(model) == 0
    step(model.net, *batch)                              # after remove: nothing is recorded
    assert len(norms.values()) == 1


def test_every_k_steps_and_ring_keeps_the_newest(batch):
    model = rl.cifar_resnet(8)
    with GradientNorms(model, every=2, capacity=2) as norms:
        for _ in range(7):
            step(model, *batch)
    assert norms.step_numbers().tolist() == [4, 6]   # recorded 0, 2, 4, 6; kept the last two


def test_two_forwards_into_one_backward_make_one_record(batch):
    model = rl.cifar_resnet(8)
    x, y = batch
    with GradientNorms(model) as norms:
        (F.cross_entropy(model(x[:4]), y[:4]) + F.cross_entropy(model(x[4:]), y[4:])).backward()
        expected = model.conv1.weight.grad.norm().item()
    assert len(norms.ring) == 1 and norms.values()[0, 0] == pytest.approx(expected, rel=1e-5)


def test_no_grad_forward_records_nothing(batch):
    model = rl.cifar_resnet(8)
    with GradientNorms(model) as norms, torch.no_grad():
        model(batch[0])
    assert len(norms.ring) == 0


def test_block_output_norms_match_autograd(batch):
    model = rl.cifar_resnet(8)
    outputs = {}
    handle = model.layer2[0].register_forward_hook(
        lambda m, i, o: outputs.setdefault("out", o.retain_grad() or o))
    with GradientNorms(model, block_outputs=True) as norms:
        step(model, *batch)
    handle.remove()
    assert norms.block_names == ["layer1.0", "layer2.0", "layer3.0"]
    assert norms.block_values()[0, 1] == pytest.approx(outputs["out"].grad.norm().item(), rel=1e-5)


def test_sequential_with_inplace_relu_and_a_reused_layer():
    torch.manual_seed(0)
    shared = nn.Linear(16, 16)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(inplace=True), shared, nn.ReLU(inplace=True),
                          shared, nn.Linear(16, 2))
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 0, 1, 1])
    reference = model(x)
    with GradientNorms(model) as norms, ActivationStats(model) as acts:
        out = model(x)
        torch.testing.assert_close(out, reference)          # hooks did not replace the output
        F.cross_entropy(out, y).backward()
    # a reused layer appears once, with its accumulated gradient
    assert norms.names == ["0", "2", "5"]
    assert norms.values()[0, 1] == pytest.approx(shared.weight.grad.norm().item(), rel=1e-5)
    # in-place ReLUs: the stats are those of the ReLU outputs (no negatives, some zeros)
    assert acts.names == ["1", "3"]
    assert acts.means().shape == (1, 2) and (acts.dead() > 0).all()
    assert acts.histograms()[0].sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_activation_stats_on_blocks_and_eval_mode(batch):
    model = rl.cifar_resnet(20)
    with ActivationStats(model, bins=10, hist_range=(0, 5)) as acts:
        model(batch[0])
        model.eval()
        model(batch[0])        # train_only: not recorded
    assert acts.names[0] == "layer1.0" and len(acts.names) == 9
    assert acts.stds().shape == (1, 9) and acts.histograms().shape == (1, 9, 10)
    out = model.layer1[0](model.relu(model.bn1(model.conv1(batch[0]))))
    assert acts.dead()[0, 0] == pytest.approx((out == 0).float().mean().item(), abs=0.05)


@pytest.mark.parametrize("make", [lambda m: GradientNorms(m, block_outputs=True),
                                  lambda m: ActivationStats(m)])
@pytest.mark.slow
def test_hooks_are_removed_after_1000_cycles_even_on_exceptions(make, batch):
    model = rl.cifar_resnet(8)
    assert hook_count(model) == 0
    for exc in (None, RuntimeError, KeyboardInterrupt):
        try:
            with make(model):
                step(model, *batch)
                if exc:
                    raise exc
        except (RuntimeError, KeyboardInterrupt):
            pass
        assert hook_count(model) == 0
    gc.collect()
    tracemalloc.start()
    for i in range(1000):
        with make(model):
            pass
        if i == 99:
            gc.collect()
            start, _ = tracemalloc.get_traced_memory()
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert hook_count(model) == 0
    assert end - start < 200_000, f"memory grew by {end - start} bytes over 900 cycles"


def test_remove_is_idempotent(batch):
    model = rl.cifar_resnet(8)
    norms = GradientNorms(model)
    norms.remove()
    norms.remove()
    assert hook_count(model) == 0


def test_gradient_profile_leaves_the_model_as_it_was(batch):
    model = rl.cifar_resnet(20)
    step(model, *batch)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    profile = gradient_profile(model, *batch)
    assert list(profile)[:2] == ["conv1", "layer1.0.conv1"] and len(profile) == 20
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())
    assert hook_count(model) == 0
    model.zero_grad()
    step(model, *batch)
    # the profile is the gradient a training step would see (BN stats were restored)
    assert profile["layer2.1.conv2"] == pytest.approx(
        model.layer2[1].conv2.weight.grad.norm().item(), rel=1e-4)


def profile_of(model, seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, model.conv1.in_channels, size, size, generator=g) \
        if hasattr(model, "conv1") else torch.randn(64, 64, generator=g)
    return gradient_profile(model, x, torch.randint(0, 10, (x.shape[0],), generator=g))


def test_deep_sigmoid_mlp_gradients_vanish_without_skips_not_with():
    plain = profile_of(rl.deep_mlp(20, activation="sigmoid", skip=0.0, seed=0))
    residual = profile_of(rl.deep_mlp(20, activation="sigmoid", skip=1.0, seed=0))
    assert rl.first_last_ratio(plain) < 1e-6           # orders of magnitude below the last layer
    assert rl.regime(plain) == "vanishing" and rl.regime(residual) == "healthy"


def test_regime_words_and_their_edges():
    assert rl.regime([1e-5, 1.0]) == "vanishing"
    assert rl.regime({"a": 500.0, "b": 1.0}) == "exploding"
    assert rl.regime([1.0, 2.0]) == "healthy"
    assert rl.regime([0.0, 1.0]) == "vanishing"          # the first layer's gradient underflowed
    assert rl.regime([0.0, 0.0, 0.0]) == "no gradient"      # not "exploding": nothing to compare
    assert rl.first_last_ratio({"a": 500.0, "b": 1.0}) == 500.0
    with pytest.raises(ValueError, match="at least two"):
        rl.first_last_ratio([1.0])


def test_recording_goes_on_after_a_backward_pass_that_raised(batch):
    model = rl.cifar_resnet(8)
    x, y = batch
    with GradientNorms(model) as norms:
        out = model(x)
        handle = model.layer2[0].conv1.weight.register_hook(lambda g: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            F.cross_entropy(out, y).backward()
        handle.remove()
        model.zero_grad()
        step(model, x, y)
        step(model, x, y)
    assert len(norms.ring) == 2


def test_an_empty_selection_of_modules_is_refused_at_once():
    with pytest.raises(ValueError, match="modules=\\[\\] watches nothing"):
        ActivationStats(rl.cifar_resnet(8), modules=[])


def test_weight_change_is_measured_wherever_the_model_lives(batch, device):
    model = rl.cifar_resnet(8, seed=0)
    start = weight_snapshot(model)
    model.to(device)
    assert set(relative_weight_change(model, start).values()) == {0.0}
    with torch.no_grad():
        model.fc.weight.mul_(2)
    change = relative_weight_change(model, start)
    assert change["fc"] == pytest.approx(1.0) and change["conv1"] == 0.0


def test_gradient_profile_moves_the_data_to_the_model(batch, device):
    model = rl.cifar_resnet(8, seed=0)
    on_cpu = gradient_profile(model, *batch)
    model.to(device)
    on_device = gradient_profile(model, *batch)                # the batch is still on the CPU
    assert list(on_device) == list(on_cpu)
    np.testing.assert_allclose(list(on_device.values()), list(on_cpu.values()), rtol=1e-3)


def test_bad_arguments_are_refused():
    model = rl.cifar_resnet(8)
    with pytest.raises(ValueError, match="every=0"):
        GradientNorms(model, every=0)
    with pytest.raises(ValueError, match="modules=\\['nope'\\]"):
        ActivationStats(model, modules=["nope"])
    with GradientNorms(model) as norms, pytest.raises(ValueError, match="block_outputs=True"):
        norms.block_values()
    assert hook_count(model) == 0


def test_update_ratios_measure_what_the_optimizer_did(batch):
    model = rl.cifar_resnet(8, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with UpdateRatios(model) as ratios:
        for _ in range(3):
            before = {n: model.get_submodule(n).weight.detach().clone() for n in ratios.names}
            step(model, *batch, opt)
        model(batch[0])                          # the forward that sees the last update
        model.eval()
        model(batch[0])                          # eval mode: not a training step, not recorded
    expected = [((model.get_submodule(n).weight - before[n]).norm() / before[n].norm()).item()
                for n in ratios.names]
    assert ratios.values().shape == (3, len(ratios.names))
    np.testing.assert_allclose(ratios.values()[-1], expected, rtol=1e-4)
    assert hook_count(model) == 0


def test_a_deep_sigmoid_mlps_first_layers_barely_move():
    torch.manual_seed(0)
    x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
    mlp = rl.deep_mlp(20, activation="sigmoid", seed=0)
    opt = torch.optim.SGD(mlp.parameters(), lr=0.1)
    with UpdateRatios(mlp) as ratios:
        for _ in range(4):
            step(mlp, x, y, opt)
    last = ratios.values()[-1]
    assert last[1] < last[-1] * 1e-6                   # blocks.0.fc vs the output layer


def test_a_vanishing_gradient_reads_as_its_size_not_as_zero():
    """Entries of 1e-25 square to 1e-50, below float32's smallest number: a plain sum of squares
    reads 0. The lab's norms (per layer and per block output) give the float64 norm."""
    tiny = [torch.full((3, 3), 1e-25), torch.zeros(4), torch.tensor([3.0, 4.0])]
    assert torch._foreach_norm(tiny)[0] == 0                     # what a plain norm reads
    norms = layer_norms([torch.empty(1)] * 3, tiny)
    torch.testing.assert_close(norms, torch.tensor([3e-25, 0.0, 5.0]), rtol=1e-5, atol=0)
    torch.testing.assert_close(scaled_norm(tiny[0]), torch.tensor(3e-25), rtol=1e-5, atol=0)
    net = rl.cifar_resnet(56, skip=0.0, norm=False, init="default", seed=0)
    with GradientNorms(net, block_outputs=True) as norms:
        F.cross_entropy(net(torch.randn(16, 3, 16, 16)), torch.randint(0, 10, (16,))).backward()
    assert (norms.block_values()[0] > 0).all() and (norms.values()[0] > 0).all()
