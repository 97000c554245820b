"""One variable per comparison: every verdict that compares two nets compares a pair that
differs in exactly the fields its claim names, read from the nets the experiments build
(untrained: cheap), and the line that says so is built from the setups."""

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch

from resnet_lab import lessons
from resnet_lab.lessons import experiments as ex
from resnet_lab.nets.models import cifar_resnet
from resnet_lab.training import comparison, data, recipes, train
from resnet_lab.training.callbacks import StopAtLoss
from resnet_lab.training.comparison import measured_setup, one_change

S = replace(lessons.QUICK, size=8, width=2, steps=4, batch_size=16)
IMAGES = data.synthetic(64, 32, size=8, channels=1)


def pair(nets: dict, a: str, b: str) -> comparison.Comparison:
    return one_change(measured_setup(nets[a]), measured_setup(nets[b]))


def degradation(a: str, b: str) -> comparison.Comparison:
    return pair(lessons.degradation_nets(S, IMAGES), a, b)


# verdict -> (its pair's comparison, the fields its claim names, the same initial tensors?)
VERDICTS = {
    "deeper_plain_trains_worse": (lambda: degradation("plain-20", "plain-56"), {"depth"},
                                  False),
    "skips_reduce_degradation": (lambda: degradation("ResNet-56", "plain-56"), {"skip"}, True),
    "responses_are_smaller": (lambda: degradation("ResNet-56", "plain-56"), {"skip"}, True),
    "identity_is_easier": (lambda: ex.identity_pair(steps=3), {"skip"}, True),
    "skips_carry_the_gradient": (lambda: ex.gradient_pair(S.size), {"skip"}, True),
    "block_types_match": (lambda: pair(ex.block_type_nets(S, IMAGES), "basic, 20 layers",
                                       "bottleneck, 29 layers"), {"block", "depth"}, False),
    "ensemble_survives_deletion": (lambda: degradation("ResNet-20", "plain-20"), {"skip"},
                                   True),
    "plain_explodes_with_bn": (
        lambda: ex.regime_pairs(IMAGES)["plain-56, no BN, default init vs BatchNorm, default init"],
        {"norm"}, False),
    "residual_stays_healthy": (lambda: ex.regime_pairs(IMAGES)[
        "plain-56 vs ResNet-56, BatchNorm, He init"],
                               {"skip"}, True),
    "resnext_keeps_up": (lambda: pair(ex.lab_pair(1, 10), *ex.LAB_PAIR),
                                    {"groups", "width_per_group"}, False),
    "preact_trains_better": (lambda: pair(ex.preact_nets(S, IMAGES), "ResNet-110",
                                          "pre-act ResNet-110"), {"preact"}, False),
}


@pytest.mark.parametrize("verdict", VERDICTS)
def test_each_verdicts_pair_changes_only_what_its_claim_names(verdict):
    make, fields, same_weights = VERDICTS[verdict]
    compared = make()
    assert set(compared.changed) == fields, str(compared)
    assert compared.same_weights is same_weights, str(compared)
    changed, same, weights = compared.lines()
    assert changed.startswith("changed: ") and same.startswith("the same: ")
    assert all(comparison.changed_field(field) in changed for field in fields), str(compared)
    assert not any(comparison.changed_field(field) in same for field in fields), str(compared)
    assert ("tensors start equal" in weights) is same_weights, weights


def test_a_runs_histories_differ_only_in_their_nets():
    """The trained verdicts compare two models of one `compare` call: their histories record
    the same data, batches, recipe, steps and evaluation, so only the nets' fields differ."""
    nets = {n: cifar_resnet(20, width=2, in_channels=1, skip=skip, seed=0)
            for n, skip in (("plain", 0.0), ("ResNet", 1.0))}
    runs = train.compare(nets, IMAGES, steps=2, batch_size=16, recipe="constant",
                         eval_samples=16, grad_every=0)
    compared = comparison.between(runs["ResNet"], runs["plain"])
    assert set(compared.changed) == {"skip"}
    assert compared.same_weights
    for shared in ("data", "steps", "recipe", "seed", "batch_size", "eval_bn", "engine"):
        assert shared in compared.same
    assert compared.same["steps"] == 2 and compared.same["data"] == IMAGES.name


def test_stopping_at_a_loss_records_the_steps_trained():
    """`matched_resnet`'s stop: a model stopped at a target loss records the steps it
    trained, so a comparison at matched loss says that the steps changed."""
    nets = {n: cifar_resnet(20, width=2, in_channels=1, skip=skip, seed=0)
            for n, skip in (("plain", 0.0), ("ResNet", 1.0))}
    runs = train.compare({"plain": nets["plain"]}, IMAGES, steps=6, batch_size=16,
                         eval_samples=16, grad_every=0)
    stopped = train.compare({"ResNet": nets["ResNet"]}, IMAGES, steps=6, batch_size=16,
                            eval_samples=16, grad_every=0, callbacks=[StopAtLoss(1e3, 3)])
    assert stopped["ResNet"].status == "early-stopped" and len(stopped["ResNet"].step) == 3
    compared = comparison.between(runs["plain"], stopped["ResNet"])
    assert set(compared.changed) == {"skip", "steps"}
    assert "steps (6 → 3)" in str(compared)


def test_the_landscape_controls_equal_steps_leave_only_the_skip():
    """Lesson 5's control for its matched pair: plain-56 trained for the steps the matched
    ResNet-56 took, from the same weights on the same batches: only the skip differs."""
    s = replace(S, steps=12)
    _, matched = ex.matched_resnet(s, IMAGES, target=1e3)   # stops after its first 10 steps
    _, early = ex.equal_steps_plain(s, IMAGES, len(matched.step))
    compared = comparison.between(matched, early)
    assert len(matched.step) == 10
    assert set(compared.changed) == {"skip"} and compared.same_weights, str(compared)


def test_the_same_seed_is_not_the_same_weights():
    """Nets of another shape draw other weights from the same seed: the line says so."""
    compared = one_change(measured_setup(cifar_resnet(20, width=2, seed=0)),
                          measured_setup(cifar_resnet(32, width=2, seed=0)))
    assert not compared.same_weights and compared.weights_seed == 0
    assert "seed 0 for both; not every tensor starts equal" in str(compared)
    unseeded = one_change(measured_setup(cifar_resnet(20, width=2)),
                          measured_setup(cifar_resnet(20, width=2)))
    assert not unseeded.same_weights and not unseeded.changed


def test_the_plain_identity_stack_can_compute_the_identity():
    """The identity test is fair only if the plain stack can represent H(x) = x: with
    W1 = [I; -I], W2 = [I, -I] / scale and zero biases every plain block is the identity."""
    stack = ex.set_identity_weights(ex.identity_stacks()["plain"].blocks)
    x = torch.randn(32, stack[0].fc.out_features, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(stack(x), x, atol=1e-4)
    assert not torch.allclose(ex.identity_stacks()["plain"].blocks(x), x, atol=0.1)


def test_the_identity_stacks_measures_read_the_signal_and_the_branches():
    """`signal_through`: the plain stack as initialised lets almost nothing of its input
    through, the same stack with the identity's weights all of it; `branch_sizes`: a
    residual block whose last layer is zero has F = 0, so its size reads 0."""
    stacks = ex.identity_stacks()
    std, across = ex.signal_through(stacks)["plain"]
    assert across < 1e-6 < std
    ex.set_identity_weights(stacks["plain"].blocks)
    assert abs(ex.signal_through(stacks)["plain"][1] - 1) < 0.1
    residual = stacks["residual"].blocks
    assert (ex.branch_sizes(residual) > 0.1).all()
    with torch.no_grad():
        residual[3].fc.weight.zero_()
        residual[3].fc.bias.zero_()
    sizes = ex.branch_sizes(residual)
    assert sizes[3] == 0 and (np.delete(sizes, 3) > 0.1).all()


def test_a_recipe_saved_before_a_field_existed_compares_as_that_fields_default():
    """A run saved before `warmup_steps` existed warmed up by its error rule, as
    `warmup_steps=0` says: no change. A fixed warm-up is one."""
    now = dataclasses.asdict(recipes.RECIPES["he2015"])
    before = {k: v for k, v in now.items() if k != "warmup_steps"}
    assert not comparison.one_change({"recipe": before}, {"recipe": now}).changed
    fixed = dataclasses.asdict(recipes.with_warmup_steps("he2015", 386))
    assert set(comparison.one_change({"recipe": before}, {"recipe": fixed}).changed) == {"recipe"}
