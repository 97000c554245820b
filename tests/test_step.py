"""The training step as an object: the eager Step and the device-side history buffer of
`compare` (the captured CUDA step: test_captured.py)."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import resnet_lab as rl
from resnet_lab.instruments.hooks import GradientNorms
from resnet_lab.training import callbacks, data, recipes, step, train


@pytest.fixture(scope="module")
def images():
    return data.synthetic(512, 64, size=8, seed=3)


SCHEDULE = recipes.Recipe("schedule", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="step",
                        milestones=(0.5, 0.75))


def old_engine(model, images, steps):
    """The engine as it was before the Step: SGD with a float lr set each step, gradients set
    to None, norms recorded by autograd hooks (GradientNorms), one host read per step."""
    batches = data.Batches(images, 32, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=SCHEDULE.lr, momentum=SCHEDULE.momentum,
                          weight_decay=SCHEDULE.weight_decay)
    losses, errors = [], []
    with GradientNorms(model) as norms:
        for i in range(steps):
            x, y = next(batches)
            for group in opt.param_groups:
                group["lr"] = SCHEDULE.lr_at(i / steps)
            out = model(x)
            loss = F.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            errors.append((out.argmax(1) != y).float().mean().item())
    return losses, errors, norms.values().tolist()


def test_the_step_engine_trains_bitwise_as_the_old_engine(images):
    """ResNet-8 over a step schedule: the same losses, errors, norms and weights, exactly."""
    ours, theirs = rl.cifar_resnet(8, width=4, seed=1), rl.cifar_resnet(8, width=4, seed=1)
    h = train.fit(ours, images, steps=40, batch_size=32, recipe=SCHEDULE, eval_every=1000,
                  device="cpu")
    losses, errors, norms = old_engine(theirs, images, 40)
    assert h.train_loss == losses and h.train_error == errors and h.grad_norms == norms
    assert h.lr[0] == 0.1 and h.lr[-1] == pytest.approx(0.001)     # the schedule really ran
    # the weights exactly; BatchNorm's running statistics differ by design: the last
    # evaluation re-estimated them (precise BatchNorm), which the old engine did not
    assert all(torch.equal(a, b) for a, b in
               zip(ours.parameters(), theirs.parameters(), strict=True))


class HostReads(TorchDispatchMode):
    """Counts reads from a tensor into Python: `aten._local_scalar_dense` (`.item()`, `bool`,
    `float`) and the Tensor methods that copy out (`tolist`, `cpu`, `numpy`), outermost only."""

    METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__")

    def __init__(self):
        super().__init__()
        self.count, self.depth = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and not self.depth:
            self.count += 1
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def watching(self, monkeypatch):
        for name in self.METHODS:
            monkeypatch.setattr(torch.Tensor, name, self._counted(getattr(torch.Tensor, name)))
        with self:
            yield self

    def _counted(self, method):
        def counted(tensor, *args, **kwargs):
            if not self.depth:
                self.count += 1
            self.depth += 1
            try:
                return method(tensor, *args, **kwargs)
            finally:
                self.depth -= 1
        return counted


def test_the_host_read_detector_sees_what_it_should(monkeypatch):
    with HostReads().watching(monkeypatch) as reads:
        t = torch.ones(3)
        t.sum().item()
        bool(t[0] > 0)
        t.tolist()
        float(t[1])
    assert reads.count == 4


def test_a_step_reads_nothing_back_to_the_host(images, monkeypatch):
    model = rl.cifar_resnet(8, width=4, seed=0)
    s = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    x, y = images.x_train[:32], images.y_train[:32]
    s(x, y, 0.1)                                   # momentum buffers exist from here on
    with HostReads().watching(monkeypatch) as reads:
        rows = [s(x, y, lr) for lr in (0.1, 0.05, 0.01)]
    assert reads.count == 0
    assert rows[0].shape == (s.width,) and s.width == 2 + len(s.layers) == 2 + 8


class Reads(callbacks.Callback):
    """Host reads seen by the end of each step, and the flushes made by then."""

    def __init__(self, reads):
        self.reads, self.seen = reads, []

    def on_step(self, run):
        self.seen.append((self.reads.count, run.flushes))


@pytest.mark.slow
def test_compare_reads_the_host_once_per_flush(images, monkeypatch):
    nets = {"a": rl.cifar_resnet(8, width=4, seed=0), "b": rl.plain_net(8, width=4, seed=0)}
    with HostReads().watching(monkeypatch) as reads:
        watch = Reads(reads)
        train.compare(nets, images, steps=120, batch_size=32, eval_every=1000, device="cpu",
                      callbacks=[watch])
    (reads0, flushes0), (reads1, flushes1) = watch.seen[0], watch.seen[-1]
    assert flushes1 - flushes0 >= 2                          # 120 steps, every 50 at the most
    assert reads1 - reads0 == flushes1 - flushes0            # one host read per flush, no other


def test_a_diverging_model_stops_at_its_first_bad_row_even_between_flushes(images):
    nets = {"wild": rl.cifar_resnet(8, width=4, norm=False, seed=0),
            "calm": rl.cifar_resnet(8, width=4, seed=0)}
    with pytest.warns(UserWarning, match="diverged at step"):
        runs = train.compare(nets, images, steps=60, batch_size=32, device="cpu",
                             recipe=recipes.with_lr("constant", 50.0), eval_every=1000)
    wild = runs["wild"]
    assert wild.status == "diverged" and len(wild.lr) == len(wild.step) == len(wild.train_loss)
    assert all(loss == loss for loss in wild.train_loss)     # no NaN kept
    assert f"step {len(wild.step) + 1}:" in wild.message


def test_fused_tensor_lr_sgd_is_feature_detected(monkeypatch):
    assert step.fused_sgd_problem(torch.device("cpu")) == ""

    def no_fused(*args, fused=None, **kwargs):
        raise RuntimeError("fused=True requires CUDA")

    monkeypatch.setattr(torch.optim, "SGD", no_fused)
    assert "not supported: fused=True requires CUDA" in step.fused_sgd_problem(
        torch.device("cpu"))


def test_compare_rejects_an_unknown_graphs_mode(images):
    with pytest.raises(ValueError, match="graphs='always'.*'auto', 'off', 'require'"):
        train.compare({"a": rl.cifar_resnet(8, width=4)}, images, steps=1, graphs="always")
