"""The training step as an object: the eager Step, the device-side history buffer of `compare`,
and the captured CUDA step's logic, driven on the CPU through a fake graph."""

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import resnet_lab as rl
from resnet_lab import callbacks, data, recipes, step, train
from resnet_lab.hooks import GradientNorms


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
    assert all(torch.equal(a, b) for a, b in
               zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True))


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


class FakeGraph:
    """A CUDA graph stand-in: replay re-runs the captured step into the same output tensor."""

    def __init__(self, fn, out, corrupt=0.0):
        self.fn, self.out, self.corrupt, self.resets = fn, out, corrupt, 0

    def replay(self):
        self.out.copy_(self.fn() + self.corrupt)

    def reset(self):
        self.resets += 1


class FakeGraphs:
    """A `step.CudaGraphs` stand-in for the CPU: capture runs the step (the captured step
    restores its state afterwards, as after a real capture nothing has run)."""

    def __init__(self, fail=None, corrupt=0.0):
        self.fail, self.corrupt, self.graphs = fail, corrupt, []

    def warm_up(self, fn):
        if self.fail == "side stream":
            raise RuntimeError("no side stream today")
        return fn()

    def capture(self, fn):
        if self.fail:
            raise RuntimeError(self.fail)
        out = fn()
        self.graphs.append(FakeGraph(fn, out, self.corrupt))
        return self.graphs[-1], out


def captured(backend, graphs="auto", seed=0):
    model = rl.cifar_resnet(8, width=4, seed=seed)
    return step.CapturedStep(model, lr=0.1, momentum=0.9, weight_decay=5e-4, graphs=graphs,
                             backend=backend, name="ResNet-8")


def run_steps(s, images, n, lr=0.1):
    batches = data.Batches(images, 32, seed=0)
    return [s(*next(batches), lr) for _ in range(n)]


def test_the_captured_step_trains_like_the_eager_one(images):
    """Warm-up, one capture, replays: the same rows as the eager fused-SGD step, and a new
    learning rate is a fill of the lr tensor, not a recapture."""
    s = captured(FakeGraphs())
    model = rl.cifar_resnet(8, width=4, seed=0)
    reference = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                                 weight_decay=5e-4, fused=True))
    ours = run_steps(s, images, 8) + run_steps(s, images, 2, lr=0.02)
    theirs = run_steps(reference, images, 8) + run_steps(reference, images, 2, lr=0.02)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-6)
               for a, b in zip(ours, theirs, strict=True))
    assert s.engine == "cuda graph" and s.captures == 1 and float(s.lr) == pytest.approx(0.02)


def test_a_skip_change_recaptures_and_the_fourth_change_goes_eager(images, capsys):
    s = captured(FakeGraphs())
    run_steps(s, images, 5)
    for n, gate in enumerate((0.0, 1.0, 0.0), start=2):     # three recaptures are allowed
        rl.set_skip(s.model, gate)
        run_steps(s, images, 1)
        assert s.captures == n and s.engine == "cuda graph"
    rl.set_skip(s.model, 1.0)
    run_steps(s, images, 1)
    assert s.engine.startswith("eager") and "recaptured 3 times" in capsys.readouterr().out


def momentum(s):
    return [st["momentum_buffer"].clone() for st in s.optimizer.state.values()]


@pytest.mark.parametrize("backend,why", [(FakeGraphs(fail="capture failed"), "capture failed"),
                                         (FakeGraphs(corrupt=1.0), "differ from the eager")])
def test_a_failing_or_wrong_graph_falls_back_to_eager_training(images, capsys, backend, why):
    s = captured(backend)
    run_steps(s, images, 3)                          # the warm-up: eager, on the "side stream"
    kept = momentum(s)
    row = run_steps(s, images, 1)[0]                 # the capture fails / the check fails
    assert s.engine.startswith("eager (CUDA graph off") and why in s.engine
    out = capsys.readouterr().out
    assert out.startswith("ResNet-8: CUDA graph off (") and why in out
    assert not isinstance(s.optimizer.param_groups[0]["lr"], torch.Tensor)
    assert not s.optimizer.param_groups[0].get("fused")
    assert torch.isfinite(row).all()
    if backend.graphs:
        assert backend.graphs[-1].resets == 1        # the graph was let go
    fresh = run_steps(s, images, 1)[0]
    assert torch.isfinite(fresh).all() and len(momentum(s)) == len(kept)
    assert not any(torch.equal(a, b) for a, b in zip(kept, momentum(s), strict=True))


def test_a_failing_warm_up_falls_back_too(images, capsys):
    s = captured(FakeGraphs(fail="side stream"))
    rows = run_steps(s, images, 2)
    assert s.engine.startswith("eager (CUDA graph off: RuntimeError: no side stream today")
    assert all(torch.isfinite(r).all() for r in rows)
    assert "training eagerly" in capsys.readouterr().out


def test_the_fallback_carries_the_momentum_over_and_drops_the_graphs_gradients(images):
    s = captured(FakeGraphs())
    run_steps(s, images, 5)                          # warm-up, capture, one replay
    before = momentum(s)
    x, y = next(data.Batches(images, 32, seed=1))
    s.fall_back("a test", x, y, done=torch.zeros(s.width))   # this step already ran
    assert all(torch.equal(a, b) for a, b in zip(momentum(s), before, strict=True))
    assert all(p.grad is None for p in s.model.parameters())  # the graph's memory let go
    s(x, y, 0.1)
    assert all(p.grad is not None for p in s.model.parameters())


def test_graphs_require_raises_instead_of_falling_back(images):
    s = captured(FakeGraphs(fail="capture failed"), graphs="require")
    run_steps(s, images, 3)
    with pytest.raises(RuntimeError, match="CUDA graph required, but RuntimeError: capture"):
        run_steps(s, images, 1)


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


def test_compare_trains_through_a_captured_step_as_through_the_eager_one(images, monkeypatch):
    """The captured step inside `compare` (a fake graph on the CPU): the same curves, norms
    recorded every other step, and the engine named in the history."""
    def fit():
        return train.fit(rl.cifar_resnet(8, width=4, seed=2), images, steps=30, batch_size=32,
                         recipe=SCHEDULE, grad_every=2, eval_every=1000, device="cpu")

    eager = fit()
    monkeypatch.setattr(train, "make_step", lambda name, model, recipe, *_, **__:
                        step.CapturedStep(model, lr=recipe.lr, momentum=recipe.momentum,
                                          weight_decay=recipe.weight_decay,
                                          backend=FakeGraphs(), name=name))
    graphed = fit()
    assert eager.setup["engine"] == "eager" and graphed.setup["engine"] == "cuda graph"
    assert graphed.grad_step == eager.grad_step == list(range(1, 31, 2))
    assert graphed.train_loss == pytest.approx(eager.train_loss, rel=1e-4)
    assert np.allclose(graphed.grad_norms, eager.grad_norms, rtol=1e-3)
