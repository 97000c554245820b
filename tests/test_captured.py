"""The captured CUDA step, driven on the CPU through `graphs_cpu`: a graph with CUDA-graph
semantics (Python does not run on replay; what it read at capture stays frozen)."""

import contextlib
import threading

import numpy as np
import pytest
import torch

import resnet_lab as rl
from resnet_lab.instruments.hooks import GradientNorms
from resnet_lab.training import callbacks, captured, data, graphs_cpu, recipes, step, train
from resnet_lab.training import run as run_module
from resnet_lab.training.checkpoint import Checkpoint


@pytest.fixture(scope="module")
def images():
    return data.synthetic(512, 64, size=8, seed=3)


SCHEDULE = recipes.Recipe("schedule", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="step",
                          milestones=(0.5, 0.75))


def captured_step(backend, graphs="auto", seed=0, **options):
    model = rl.cifar_resnet(8, width=4, seed=seed)
    return captured.CapturedStep(model, lr=0.1, momentum=0.9, weight_decay=5e-4,
                                 graphs=graphs, backend=backend, name="ResNet-8", **options)


def run_steps(s, images, n, lr=0.1, seed=0):
    batches = data.Batches(images, 32, seed=seed)
    return [s(*next(batches), lr) for _ in range(n)]


def weights(model):
    return [t.clone() for t in model.state_dict().values()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def same_but_rounding(a, b):
    """Equal up to float32 rounding. A replayed graph's reductions may round differently from
    the eager ops' on some CPUs (measured: 9e-10 on one BatchNorm bias, AMD EPYC with AVX-512);
    a step taken twice moves a weight by far more than `atol` (see the test below)."""
    return all(torch.allclose(x.double(), y.double(), rtol=0, atol=1e-6)
               for x, y in zip(a, b, strict=True))


# --- the harness itself: it must be able to fail -------------------------------------------


def test_the_cpu_graph_freezes_a_python_float_as_a_gpu_does(images):
    """A step whose optimizer reads its lr as a Python float: after capture, a new lr does not
    reach the replays (a real CUDA graph bakes the float in too)."""
    model = rl.cifar_resnet(8, width=4, seed=0)
    s = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    x, y = images.x_train[:32], images.y_train[:32]
    s(x, y)                                               # momentum exists from here on
    graph, row = graphs_cpu.CpuGraphs().capture(lambda: s.compute(x, y, set_to_none=False))
    s.set_lr(0.0)                                         # eagerly, this step moves nothing
    before = weights(model)
    graph.replay()
    assert not same(before, weights(model))              # the replay trained at lr 0.1
    before = weights(model)
    s(x, y)
    assert same(before[:1], weights(model)[:1])          # the eager step: lr 0, conv unmoved


def test_the_cpu_graph_replays_the_step_on_the_captured_tensors(images):
    model = rl.cifar_resnet(8, width=4, seed=0)
    s = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    x, y = images.x_train[:32].clone(), images.y_train[:32].clone()
    s(x, y)
    graph, row = graphs_cpu.CpuGraphs().capture(lambda: s.compute(x, y, set_to_none=False))
    first = row.clone()
    x.copy_(images.x_train[32:64])                       # a new batch into the static input
    y.copy_(images.y_train[32:64])
    graph.replay()
    assert not torch.equal(first, row) and torch.isfinite(row).all()


def test_a_host_read_while_capturing_is_an_error():
    t = torch.ones(3)
    for read in (lambda: t.sum().item(), lambda: t.tolist(), lambda: bool(t[0] > 0)):
        with pytest.raises(graphs_cpu.HostReadInCaptureError):
            graphs_cpu.CpuGraphs().capture(read)


# --- the captured step ----------------------------------------------------------------------


def test_the_captured_step_trains_like_the_eager_one(images):
    """Warm-up, one capture, replays: the same rows as the eager fused-SGD step, and a new
    learning rate is a fill of the lr tensor, not a recapture."""
    s = captured_step(graphs_cpu.CpuGraphs())
    model = rl.cifar_resnet(8, width=4, seed=0)
    reference = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                                 weight_decay=5e-4, fused=True))
    ours = run_steps(s, images, 8) + run_steps(s, images, 2, lr=0.02)
    theirs = run_steps(reference, images, 8) + run_steps(reference, images, 2, lr=0.02)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert same(weights(s.model), weights(model))
    assert s.engine == "cuda graph" and s.captures == 1 and s.backend.graphs[0].replays == 7


def test_every_capture_warms_up_first_and_the_fourth_recapture_goes_eager(images, capsys):
    s = captured_step(graphs_cpu.CpuGraphs())
    run_steps(s, images, 5)
    for n, gate in enumerate((0.0, 1.0, 0.0), start=2):     # three recaptures are allowed
        rl.set_skip(s.model, gate)
        run_steps(s, images, 4)
        assert s.captures == n and s.engine == "cuda graph"
    assert s.backend.log == (["warm up"] * 3 + ["capture"]) * 4
    rl.set_skip(s.model, 1.0)
    run_steps(s, images, 4)
    assert s.engine.startswith("eager") and "recaptured 3 times" in capsys.readouterr().out


def test_a_replay_that_breaks_half_way_falls_back_without_taking_the_step_twice(images):
    """The capture's check replay breaks after some ops (BatchNorm statistics already moved):
    the step goes back to the state before it and takes the step once, eagerly."""
    broken = captured_step(graphs_cpu.CpuGraphs(fail_at_op=60))
    healthy = captured_step(graphs_cpu.CpuGraphs())
    rows = [run_steps(s, images, 4)[-1] for s in (broken, healthy)]
    assert "replay broke at op 60" in broken.engine and healthy.engine == "cuda graph"
    assert torch.equal(*rows) and same_but_rounding(weights(broken.model), weights(healthy.model))
    run_steps(healthy, images, 1, seed=1)                 # the step taken twice: not a rounding
    assert not same_but_rounding(weights(broken.model), weights(healthy.model))


USABLE = graphs_cpu.cuda_error(701, "too many resources requested for launch")  # not sticky


def test_a_fault_at_the_flush_goes_back_to_the_last_flush_and_voids_its_rows(images):
    """A fault that leaves the CUDA context usable (injected at the flush's synchronize)."""
    s = captured_step(graphs_cpu.CpuGraphs(fail_at_sync=2, fault=USABLE))
    run_steps(s, images, 5)
    assert s.settle() == 0
    good = weights(s.model)
    run_steps(s, images, 3, seed=1)                  # replays; their fault surfaces later
    assert s.settle() == 3                           # ... here: the three rows are void
    assert same(good, weights(s.model)) and "too many resources" in s.engine
    row = run_steps(s, images, 1)[0]
    assert torch.isfinite(row).all() and s.settle() == 0


def test_void_rows_leave_the_steps_consecutive_with_their_lr_and_norms(images, monkeypatch):
    """Flushes at steps 50 and 100 (time never flushes here); the fault at the second voids
    run steps 51-100, and the model trains on eagerly from its state at step 50. Its History
    counts its own updates: steps 1-70 (run steps 101-120 are its steps 51-70), each with the
    lr it trained at, norms only where they were made (every third run step), finite."""
    monkeypatch.setattr(run_module, "FLUSH_SECONDS", 1e9)
    with graphs_cpu.stand_in(lambda: graphs_cpu.CpuGraphs(fail_at_sync=2, fault=USABLE)):
        h = train.fit(rl.cifar_resnet(8, width=4, seed=2), images, steps=120, batch_size=32,
                      recipe=SCHEDULE, grad_every=3, eval_every=1000, device="cpu")
    kept = [*range(1, 51), *range(101, 121)]                 # run steps whose rows count
    assert "too many resources" in h.setup["engine"] and h.status == "finished"
    assert h.step == list(range(1, 71)) and len(h.train_loss) == 70
    assert h.lr == [SCHEDULE.lr_at((s - 1) / 120, False) for s in kept]
    assert h.grad_step == [n for n, s in enumerate(kept, 1) if (s - 1) % 3 == 0]
    assert np.isfinite(h.grad_norms).all() and h.test_step == [70]
    assert h.setup["steps"] == 70


def test_a_sticky_fault_at_the_flush_raises_context_lost_instead_of_training_on(images):
    """An illegal memory access surfacing at the flush kills the CUDA context: the flush says
    so and to restart, rather than training on eagerly (which fails on a GPU with a second,
    confusing error). The CPU graph's mock emulates the asynchronous fault and the dead
    context (every later call through the seam fails); its eager step would still run."""
    s = captured_step(graphs_cpu.CpuGraphs(fail_at_sync=2))
    run_steps(s, images, 5)
    assert s.settle() == 0
    run_steps(s, images, 3, seed=1)
    with pytest.raises(captured.ContextLostError, match="cannot be used any more") as lost:
        s.settle()
    assert "Restart the kernel (or the process)" in str(lost.value)
    assert "an illegal memory access" in str(lost.value) and s.engine.startswith("stopped")
    with pytest.raises(torch.AcceleratorError):      # the emulated context stays dead
        s.backend.synchronize()


def test_a_sticky_fault_names_the_runs_last_checkpoint(images, tmp_path, monkeypatch):
    """Through `fit`: the error names the Checkpoint's file (saved at steps 10 and 20; the
    fault surfaces at the third synchronize, step 30's flush); the model trains no further."""
    monkeypatch.setattr(run_module, "FLUSH_SECONDS", 1e9)   # flushes only at the checkpoints
    path = tmp_path / "c.pt"

    class Ended(callbacks.Callback):
        def on_end(self, run):
            self.statuses = {name: h.status for name, h in run.histories.items()}

    ended = Ended()
    with graphs_cpu.stand_in(lambda: graphs_cpu.CpuGraphs(fail_at_sync=3)), \
            pytest.raises(captured.ContextLostError, match="Restart") as lost:
        train.fit(rl.cifar_resnet(8, width=4, seed=2), images, steps=60, batch_size=32,
                  recipe=SCHEDULE, eval_every=1000, device="cpu",
                  callbacks=[Checkpoint(path, every_steps=10), ended])
    assert f"Its last checkpoint is {path}" in str(lost.value)
    assert ended.statuses == {"model": "context lost"}         # not left "running"
    assert torch.load(path, weights_only=True)["step"] == 20
    assert isinstance(lost.value.__cause__, torch.AcceleratorError)


@pytest.mark.parametrize("fault, sticky", [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)"), False),
    (graphs_cpu.illegal_address(), True)], ids=["out of memory", "illegal address"])
def test_a_capture_fault_falls_back_only_when_the_context_survives_it(images, fault, sticky):
    """A synchronous fault in capture: an out-of-memory error leaves the context usable (the
    step goes eager from the state before it and trains as the eager step); a sticky one not."""
    s = captured_step(graphs_cpu.CpuGraphs(capture_fault=fault))
    if sticky:
        with pytest.raises(captured.ContextLostError, match="illegal memory access"):
            run_steps(s, images, 4)
        return
    model = rl.cifar_resnet(8, width=4, seed=0)
    reference = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9,
                                                 weight_decay=5e-4, fused=True))
    ours, theirs = run_steps(s, images, 6), run_steps(reference, images, 6)
    assert s.engine.startswith("eager (CUDA graph off: OutOfMemoryError")
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7)       # eager SGD: not fused
               for a, b in zip(ours, theirs, strict=True))


def test_graphs_require_raises_instead_of_falling_back(images):
    s = captured_step(graphs_cpu.CpuGraphs(fail_at_op=10), graphs="require")
    run_steps(s, images, 3)
    with pytest.raises(RuntimeError, match="CUDA graph required, but RuntimeError: replay"):
        run_steps(s, images, 1)


def test_the_fallback_carries_the_momentum_over_and_drops_the_graphs_gradients(images):
    s = captured_step(graphs_cpu.CpuGraphs())
    run_steps(s, images, 5)                          # warm-up, capture, one replay
    before = [st["momentum_buffer"].clone() for st in s.optimizer.state.values()]
    s.fall_back("a test")
    after = [st["momentum_buffer"] for st in s.optimizer.state.values()]
    assert same(before, after) and not s.optimizer.param_groups[0].get("fused")
    assert all(p.grad is None for p in s.model.parameters())  # the graph's memory let go
    run_steps(s, images, 1)
    assert all(p.grad is not None for p in s.model.parameters())


# --- the eight faults of issue 26 -------------------------------------------------------------


class StopAt(callbacks.Callback):
    """Sets `stop` at step `at` (a process killed there); sets skip gates at `skip_at`."""

    def __init__(self, at=None, skip_at=None):
        self.at, self.skip_at, self.stop = at, skip_at, threading.Event()

    def on_step(self, run):
        if run.step == self.at:
            self.stop.set()
        if run.step == self.skip_at:
            for model in run.models.values():
                rl.set_skip(model, 0.5)


def graph_run(images, steps, callbacks=(), stop=None):
    model = rl.cifar_resnet(8, width=4, seed=4)
    with graphs_cpu.stand_in():
        h = train.fit(model, images, steps=steps, batch_size=32, recipe=SCHEDULE,
                      eval_every=1000, device="cpu", graphs="require", callbacks=callbacks,
                      stop=stop)
    return model, h


@pytest.mark.parametrize("skip_at", [None, 16], ids=["replays", "a recapture after set_skip"])
def test_a_resumed_run_with_graphs_trains_as_the_uninterrupted_one(images, tmp_path, skip_at):
    """Killed at step 8 of 24 (the lr drops at steps 12 and 18): the resumed run reads the
    scheduled lr from the step's tensor, not the checkpoint's copy, and ends on the same
    weights; so it does across a recapture."""
    whole, h = graph_run(images, 24, [StopAt(skip_at=skip_at)])
    first = StopAt(at=8, skip_at=skip_at)
    graph_run(images, 24, [Checkpoint(tmp_path / "c.pt", every_steps=8), first], first.stop)
    resumed, r = graph_run(images, 24, [Checkpoint(tmp_path / "c.pt"), StopAt(skip_at=skip_at)])
    assert r.lr == h.lr and r.setup["engine"] == "cuda graph"
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in
               zip(weights(resumed), weights(whole), strict=True))


def test_capture_is_thread_local_and_one_at_a_time(monkeypatch):
    """Fault 2: capture_error_mode="thread_local", under the process-wide lock."""
    seen = []

    @contextlib.contextmanager
    def graph(g, stream=None, **options):
        seen.append((options, captured.CAPTURE_LOCK.locked()))
        yield

    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", object)
    cuda = object.__new__(captured.CudaGraphs)           # no torch.cuda.Stream on a CPU
    cuda.stream = None
    cuda.capture(lambda: torch.ones(1))
    assert seen == [({"capture_error_mode": "thread_local"}, True)]


def test_two_threads_never_capture_at_once():
    inside, overlaps, threads = [], [], []

    def slow():
        overlaps.append(len(inside))
        inside.append(1)
        threading.Event().wait(0.05)
        inside.pop()
        return torch.ones(1)

    for _ in range(3):
        threads.append(threading.Thread(target=graphs_cpu.CpuGraphs().capture, args=(slow,)))
        threads[-1].start()
    for t in threads:
        t.join()
    assert overlaps == [0, 0, 0]


def test_instruments_or_hooks_keep_a_model_eager_and_say_why_once(images, capsys):
    model = rl.cifar_resnet(8, width=4, seed=0)
    with graphs_cpu.stand_in(), GradientNorms(model) as norms:
        h = train.fit(model, images, steps=6, batch_size=32, eval_every=1000, device="cpu")
    assert h.setup["engine"] == "eager (CUDA graph off: instruments attached (GradientNorms))"
    assert len(norms.values()) == 6 and capsys.readouterr().out == ""
    handle = model.layer1[0].register_forward_hook(lambda *args: None)
    with graphs_cpu.stand_in(), pytest.raises(RuntimeError, match="hooks attached .on layer1.0"):
        train.fit(model, images, steps=1, device="cpu", graphs="require")
    handle.remove()
    with graphs_cpu.stand_in():
        assert train.fit(model, images, steps=1, device="cpu").setup["engine"] == "cuda graph"


def test_an_instrument_attached_during_training_ends_the_graph(images):
    s = captured_step(graphs_cpu.CpuGraphs())
    run_steps(s, images, 5)
    with GradientNorms(s.model) as norms:
        run_steps(s, images, 2)
    assert s.engine == "eager (CUDA graph off: instruments attached (GradientNorms))"
    assert len(norms.values()) == 2


HOOKS = {
    "forward": lambda m, f: m.layer1[0].register_forward_hook(lambda *a: f()),
    "forward pre": lambda m, f: m.layer1[0].register_forward_pre_hook(lambda *a: f()),
    "full backward": lambda m, f: m.fc.register_full_backward_hook(lambda *a: f()),
    "full backward pre": lambda m, f: m.fc.register_full_backward_pre_hook(lambda *a: f()),
    "global forward": lambda m, f: torch.nn.modules.module.register_module_forward_hook(
        lambda *a: f()),
}


@pytest.mark.parametrize("kind", HOOKS)
def test_a_hook_added_after_the_step_was_made_ends_the_graph(images, kind):
    """A student's own hook, registered after capture: the next step trains eagerly (a replay
    would silently skip it), the hook runs at every step, the reason is the engine's."""
    s = captured_step(graphs_cpu.CpuGraphs())
    run_steps(s, images, 5)                          # warm-up, capture, a replay
    calls = []
    handle = HOOKS[kind](s.model, lambda: calls.append(1))
    try:
        run_steps(s, images, 2)
    finally:
        handle.remove()
    where = "every module (global hooks)" if kind.startswith("global") else \
        "layer1.0" if kind.startswith("forward") else "fc"
    assert s.engine == f"eager (CUDA graph off: hooks attached (on {where}))"
    assert len(calls) >= 2 and s.captures == 1


def test_a_hook_added_during_fit_is_named_once_in_the_history(images):
    class AddHook(callbacks.Callback):
        def on_step(self, run):
            if run.step == 8:
                run.models["model"].layer2[0].register_forward_hook(lambda *a: seen.append(1))

    seen = []
    with graphs_cpu.stand_in():
        h = train.fit(rl.cifar_resnet(8, width=4, seed=0), images, steps=12, batch_size=32,
                      eval_every=1000, device="cpu", callbacks=[AddHook()])
    assert h.setup["engine"] == "eager (CUDA graph off: hooks attached (on layer2.0))"
    assert len(seen) >= 4 and h.step == list(range(1, 13))


def test_norms_off_is_honoured_by_the_captured_step(images):
    graphs = []
    with graphs_cpu.stand_in(lambda: graphs.append(graphs_cpu.CpuGraphs()) or graphs[-1]):
        h = train.fit(rl.cifar_resnet(8, width=4, seed=0), images, steps=6, batch_size=32,
                      eval_every=1000, device="cpu", grad_every=0)
    ops = {str(func) for func, *_ in graphs[0].graphs[0].ops}
    assert h.setup["engine"] == "cuda graph" and not h.grad_norms
    assert not any("norm" in op and "batch_norm" not in op for op in ops), ops


def test_compare_trains_through_a_captured_step_as_through_the_eager_one(images):
    """`compare` with the captured step: the same curves, norms every other step, the
    engine named in the history."""
    def fit():
        return train.fit(rl.cifar_resnet(8, width=4, seed=2), images, steps=30, batch_size=32,
                         recipe=SCHEDULE, grad_every=2, eval_every=1000, device="cpu")

    eager = fit()
    with graphs_cpu.stand_in():
        graphed = fit()
    assert eager.setup["engine"] == "eager" and graphed.setup["engine"] == "cuda graph"
    assert graphed.grad_step == eager.grad_step == list(range(1, 31, 2))
    assert graphed.train_loss == pytest.approx(eager.train_loss, rel=1e-5)
    assert np.allclose(graphed.grad_norms, eager.grad_norms, rtol=1e-4)
