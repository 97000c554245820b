"""How fast is training on one GPU, and what do CUDA graphs buy? Ratios measured in one run.

    python benchmarks/bench_gpu.py [--depths 20 56] [--batches 128 512] [--steps 200]
    python benchmarks/bench_gpu.py --dry-run     (any machine: tiny sizes on the CPU, the CPU
                                                  graph of graphs_cpu standing in for CUDA's)

Needs CUDA (but for --dry-run). For each depth and batch size, on synthetic 32x32 images
(width 16, bf16 autocast, channels_last), images/s of:
  - the engine with graphs   `train.compare(..., graphs="require")`, norms every step
  - the engine without       `graphs="off"`: the eager Step
  - a plain eager loop       forward, backward, SGD, nothing recorded
  - the ceiling              one `CapturedStep` replayed on a fixed batch, nothing else
and the norms' cost (the engine with graphs, norms every step over norms never) and the time
of the captured step's first use (capture + self-check). Every timed loop synchronizes once
before its clock starts and once before it stops (timing.py). The targets for ResNet-56 at
batch 128: engine >= 0.8x the ceiling and >= 3x the eager loop.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
import torch.nn.functional as F
from timing import StepClock, Stopwatch  # benchmarks/, the folder of this script

import resnet_lab as rl
from resnet_lab.training import captured, data, graphs_cpu, step, train

SKIP = 10        # steps left out of each timing: warm-up, capture and self-check


def net(depth: int, width: int, device: torch.device) -> torch.nn.Module:
    model = rl.cifar_resnet(depth, width=width, seed=0).to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def engine(depth: int, width: int, images: data.Dataset, batch: int, steps: int, graphs: str,
           device: torch.device, grad_every: int = 1) -> float:
    clock = StepClock(SKIP, steps)
    train.compare({"net": rl.cifar_resnet(depth, width=width, seed=0)}, images, steps=steps,
                  batch_size=batch, recipe="constant", eval_every=10 * steps,
                  grad_every=grad_every, graphs=graphs, callbacks=[clock], device=device)
    return clock.images_per_second(batch)


def eager_loop(depth: int, width: int, images: data.Dataset, batch: int, steps: int,
               device: torch.device) -> float:
    model = net(depth, width, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batches = data.Batches(images, batch, device=device, seed=0)
    watch = Stopwatch(device)
    for i in range(steps):
        if i == SKIP:
            watch.start()
        x, y = next(batches)
        with step.autocast(device):
            out = model(step.layout(x, device))
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (steps - SKIP) * batch / watch.stop()


def ceiling(depth: int, width: int, images: data.Dataset, batch: int, steps: int,
            device: torch.device) -> tuple[float, float]:
    """Images/s of bare replays, and the seconds of the first use (capture + self-check)."""
    s = captured.CapturedStep(net(depth, width, device), lr=0.1, momentum=0.9,
                              weight_decay=5e-4, graphs="require",
                              backend=captured.graph_backend(device))
    x = step.layout(images.x_train[:batch].to(device), device)
    y = images.y_train[:batch].to(device)
    for _ in range(s.WARM_UP):
        s(x, y, 0.1)
    watch = Stopwatch(device)
    watch.start()
    s(x, y, 0.1)
    first_use = watch.stop()
    watch.start()
    for _ in range(steps):
        s(x, y, 0.1)
    return steps * batch / watch.stop(), first_use


def row(depth: int, width: int, images: data.Dataset, batch: int, steps: int,
        device: torch.device) -> str:
    """One line of the table: one depth at one batch size."""
    graphs = engine(depth, width, images, batch, steps, "require", device)
    off = engine(depth, width, images, batch, steps, "off", device)
    bare = engine(depth, width, images, batch, steps, "require", device, grad_every=0)
    loop = eager_loop(depth, width, images, batch, steps, device)
    top, first_use = ceiling(depth, width, images, batch, steps, device)
    return (f"ResNet-{depth:<3}{batch:>6}{graphs:>10.0f}{off:>11.0f}{loop:>12.0f}{top:>10.0f}"
            f"{graphs / top:>10.2f}{graphs / loop:>8.2f}{bare / graphs:>8.3f}{first_use:>10.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU, with the CPU graph standing in for CUDA")
    args = parser.parse_args()
    if args.dry_run:
        args.depths, args.batches, args.steps, width, size = [8], [16], SKIP + 3, 4, 8
    elif not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU (or --dry-run)")
    else:
        width, size = 16, 32
    device = torch.device("cpu" if args.dry_run else "cuda")
    images = data.synthetic(2_000 if args.dry_run else 20_000, 100, size=size, seed=0)
    print(f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'dry run on the CPU'}"
          f", torch {torch.__version__}; images/s, {size}x{size}, width {width}")
    print(f"{'net':<10}{'batch':>6}{'graphs':>10}{'no graphs':>11}{'eager loop':>12}"
          f"{'ceiling':>10}{'/ceiling':>10}{'/eager':>8}{'norms':>8}{'first use':>11}")
    with graphs_cpu.stand_in() if args.dry_run else contextlib.nullcontext():
        for depth in args.depths:
            for batch in args.batches:
                print(row(depth, width, images, batch, args.steps, device), flush=True)


if __name__ == "__main__":
    main()
