"""The gpu tier (`pytest -m gpu`, part 1 of benchmarks/gpu_check.py): the captured step on
CUDA with real graphs. Skipped on a machine without CUDA; RESNET_LAB_GPU_DRY_RUN=1 runs them
on the CPU with graphs_cpu's graph standing in (gpu_check --dry-run does)."""

import threading

import pytest
import torch

import resnet_lab as rl
from resnet_lab.training import callbacks, captured, data, graphs_cpu, recipes, train
from resnet_lab.training.checkpoint import Checkpoint

pytestmark = pytest.mark.gpu


@pytest.fixture
def device():
    """"cuda", or "cpu" with the CPU graph standing in for CUDA's (a dry run)."""
    if torch.cuda.is_available():
        yield "cuda"
    else:
        with graphs_cpu.stand_in():
            yield "cpu"


@pytest.fixture(scope="module")
def images():
    return data.synthetic(2_000, 100, size=16, seed=0)


def graph_step(device, depth=8):
    model = rl.cifar_resnet(depth, width=8, seed=0).to(device)
    return captured.CapturedStep(model, lr=0.1, momentum=0.9, weight_decay=5e-4,
                                 graphs="require", backend=captured.graph_backend(
                                     torch.device(device)))


def test_a_captured_step_checks_itself_and_replays_on_the_device(device, images):
    s = graph_step(device)
    batches = data.Batches(images, 64, device=device, seed=0)
    rows = [s(*next(batches), 0.1) for _ in range(30)]
    losses = torch.stack(rows)[:, 0]
    assert s.engine == "cuda graph" and s.captures == 1 and torch.isfinite(losses).all()
    assert losses[-5:].mean() < losses[:5].mean()


def test_replays_read_nothing_back_to_the_host(device, images):
    s = graph_step(device)
    batches = data.Batches(images, 64, device=device, seed=0)
    for _ in range(5):
        s(*next(batches), 0.1)
    if device == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        rows = [s(*next(batches), lr) for lr in (0.1, 0.05, 0.01)]
    finally:
        if device == "cuda":
            torch.cuda.set_sync_debug_mode("default")
    assert len(rows) == 3 and s.engine == "cuda graph"


def test_a_capture_in_a_thread_survives_work_on_the_main_thread(device, images):
    """The training lab captures in its training thread while a notebook cell runs."""
    s, errors = graph_step(device), []
    batches = data.Batches(images, 64, device=device, seed=0)

    def train_some():
        try:
            for _ in range(8):
                s(*next(batches), 0.1)
        except Exception as err:   # noqa: BLE001 - reported below
            errors.append(err)

    thread = threading.Thread(target=train_some)
    thread.start()
    while thread.is_alive():
        (torch.ones(256, 256, device=device) @ torch.ones(256, 256, device=device)).sum()
    thread.join()
    assert not errors and s.engine == "cuda graph"


def test_norms_off_and_a_resume_at_a_new_lr_on_the_device(device, images, tmp_path):
    h = train.fit(rl.cifar_resnet(8, width=8, seed=0), images, steps=12, batch_size=64,
                  device=device, graphs="require", grad_every=0, eval_every=100)
    assert h.setup["engine"] == "cuda graph" and not h.grad_norms
    stop = threading.Event()

    class StopAt(callbacks.Callback):
        def on_step(self, run):
            if run.step == 8:
                stop.set()

    path = tmp_path / "c.pt"
    train.fit(rl.cifar_resnet(8, width=8, seed=0), images, steps=16, batch_size=64,
              device=device, graphs="require", eval_every=100, stop=stop,
              callbacks=[Checkpoint(path, every_steps=8), StopAt()])
    h = train.fit(rl.cifar_resnet(8, width=8, seed=0), images, steps=16, batch_size=64,
                  device=device, graphs="require", eval_every=100,
                  recipe=recipes.with_lr("constant", 0.05), callbacks=[Checkpoint(path)])
    assert h.lr[8:] == [0.05] * 8 and h.step[-1] == 16 and h.setup["engine"] == "cuda graph"
