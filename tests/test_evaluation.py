"""Evaluation that measures the net: precise BatchNorm re-estimates the statistics eval mode
reads, so a test error is the net's, not the lag of BatchNorm's running averages."""

import pytest
import torch
from torch import nn

import resnet_lab as rl
from resnet_lab import lessons
from resnet_lab.training import data, train
from resnet_lab.training.evaluation import (
    bn_images,
    describe_bn,
    evaluate,
    has_batchnorm,
    precise_bn,
)


def test_precise_bn_is_the_plain_average_of_the_batches_statistics():
    """After precise_bn each BatchNorm holds the mean over the batches of their batch means
    (and unbiased variances), whatever it held before; the model's mode is kept."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    images = torch.randn(256, 3, generator=g) * 5 + 2
    net[1].running_mean.fill_(100.0)                      # stale statistics
    net.eval()
    assert precise_bn(net, images, batch_size=64) == 256
    with torch.no_grad():
        h = net[0](bn_images(images)).view(4, 64, 4)       # the fixed sample, in its order
    assert torch.allclose(net[1].running_mean, h.mean(1).mean(0), atol=1e-5)
    assert torch.allclose(net[1].running_var, h.var(1, unbiased=True).mean(0), atol=1e-4)
    assert not net.training and net[1].momentum == 0.1    # mode and momentum as they were


def test_precise_bn_leaves_a_net_without_batchnorm_alone():
    mlp = rl.deep_mlp(4, seed=0)
    before = [p.clone() for p in mlp.state_dict().values()]
    assert not has_batchnorm(mlp) and precise_bn(mlp, torch.randn(8, 1, 8, 8)) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, mlp.state_dict().values(), strict=True))
    assert describe_bn(mlp, 1024) == "no BatchNorm"


def test_bn_images_are_a_fixed_sample_and_bad_counts_are_named():
    x = torch.arange(100.0).view(100, 1)
    assert torch.equal(bn_images(x, 10), bn_images(x, 10)) and len(bn_images(x, 10)) == 10
    assert len(bn_images(x, 1000)) == 100                   # a small set: all of it
    with pytest.raises(ValueError, match="n="):
        bn_images(x, 0)


def test_compare_records_how_its_test_errors_were_read():
    tiny = data.synthetic(512, 128, size=8, seed=0)
    runs = train.compare({"ResNet-8": rl.cifar_resnet(8, width=4, seed=0)}, tiny, steps=4,
                            batch_size=32, eval_every=2)
    h = runs["ResNet-8"]
    assert h.setup["eval_bn"] == "precise BatchNorm, re-estimated on 512 training images"
    assert h.running_bn_test_error is not None and len(h.test_error) == 2


@pytest.mark.slow
def test_a_trained_plain_56_is_tested_on_the_net_not_on_batchnorm_lag():
    """Lesson 1's degradation run (quick mode): plain-56 learns its batches fast, and the
    running averages lag behind its weights. Its test error must be read from the net itself:
    within 10 points of its training error over the last 50 batches (with the running
    averages it was 18 to 45 points above them)."""
    s = lessons.QUICK
    images = lessons.degradation_data(s)
    _, runs = lessons.degradation_runs(s, images, ("plain-56",))
    h = runs["plain-56"]
    train_error = sum(h.train_error[-50:]) / 50
    assert abs(h.test_error[-1] - train_error) < 0.10, (h.test_error[-1], train_error)


def test_evaluate_with_bn_from_reestimates_first():
    """`bn_from` is precise_bn, then evaluate: the same numbers, whatever the net held."""
    tiny = data.synthetic(256, 64, size=8, seed=0)
    net, twin = rl.cifar_resnet(8, width=4, seed=0), rl.cifar_resnet(8, width=4, seed=0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(1e-6)                       # absurd statistics
    stale = evaluate(net, tiny.x_test, tiny.y_test)
    precise_bn(twin, tiny.x_train)
    assert evaluate(net, tiny.x_test, tiny.y_test, bn_from=tiny.x_train) == \
        evaluate(twin, tiny.x_test, tiny.y_test) != stale


def test_precise_bn_calls_no_hook_and_evaluate_puts_the_running_averages_back():
    """An instrument attached to the net records nothing of precise BatchNorm's passes, and
    `evaluate(bn_from=...)` leaves the running averages as training left them."""
    tiny = data.synthetic(256, 64, size=8, seed=0)
    net = rl.cifar_resnet(8, width=4, seed=0)
    with rl.ActivationStats(net, train_only=False) as acts:
        precise_bn(net, tiny.x_train)
    assert len(acts.step_numbers()) == 0
    running = [m.running_var.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    evaluate(net, tiny.x_test, tiny.y_test, bn_from=tiny.x_train)
    assert all(torch.equal(a, m.running_var) for a, m in zip(
        running, (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)), strict=True))
