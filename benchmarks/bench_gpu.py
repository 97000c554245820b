"""How fast is training on one GPU, and what do CUDA graphs buy? Ratios measured in one run.

    python benchmarks/bench_gpu.py [--depths 20 56] [--batches 128 512] [--steps 200]

Needs CUDA. For each depth and batch size, on synthetic 32x32 images (width 16, bf16 autocast,
channels_last), images/s of:
  - the engine with graphs   `train.compare(..., graphs="require")`, norms every step
  - the engine without       `graphs="off"`: the eager Step
  - a plain eager loop       forward, backward, SGD, nothing recorded
  - the ceiling              one `step.CapturedStep` replayed on a fixed batch, nothing else
and the norms' cost (the engine with graphs, norms every step vs never) and the time of the
captured step's first use (capture + self-check). The targets for ResNet-56 at batch 128:
engine >= 0.8x the ceiling and >= 3x the eager loop.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

import resnet_lab as rl
from resnet_lab import callbacks, data, step, train


class Clock(callbacks.Callback):
    """Times the steps after the first `skip` (warm-up, capture and self-check left out)."""

    def __init__(self, skip: int = 10):
        self.skip, self.start, self.end, self.steps = skip, 0.0, 0.0, 0

    def on_step(self, run: train.Run) -> None:
        if run.step == self.skip:
            torch.cuda.synchronize()
            self.start = time.perf_counter()
        elif run.step > self.skip:
            torch.cuda.synchronize()
            self.end, self.steps = time.perf_counter(), run.step - self.skip

    def images_per_second(self, batch: int) -> float:
        return self.steps * batch / (self.end - self.start)


def engine(depth: int, images: data.Dataset, batch: int, steps: int, graphs: str,
           grad_every: int = 1) -> float:
    clock = Clock()
    train.compare({"net": rl.cifar_resnet(depth, seed=0)}, images, steps=steps, batch_size=batch,
                  recipe="constant", eval_every=10 * steps, grad_every=grad_every,
                  graphs=graphs, callbacks=[clock])
    return clock.images_per_second(batch)


def eager_loop(depth: int, images: data.Dataset, batch: int, steps: int) -> float:
    model = rl.cifar_resnet(depth, seed=0).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    batches = data.Batches(images, batch, device="cuda", seed=0)
    for i in range(steps):
        if i == 10:
            torch.cuda.synchronize()
            start = time.perf_counter()
        x, y = next(batches)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return (steps - 10) * batch / (time.perf_counter() - start)


def ceiling(depth: int, images: data.Dataset, batch: int, steps: int) -> tuple[float, float]:
    """Images/s of bare replays, and the seconds of the first use (capture + self-check)."""
    model = rl.cifar_resnet(depth, seed=0).cuda().to(memory_format=torch.channels_last)
    s = step.CapturedStep(model, lr=0.1, momentum=0.9, weight_decay=5e-4, graphs="require")
    x = images.x_train[:batch].cuda().contiguous(memory_format=torch.channels_last)
    y = images.y_train[:batch].cuda()
    for _ in range(s.WARM_UP):
        s(x, y, 0.1)
    torch.cuda.synchronize()
    start = time.perf_counter()
    s(x, y, 0.1)
    torch.cuda.synchronize()
    first_use = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        s(x, y, 0.1)
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start), first_use


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py needs a CUDA GPU")
    images = data.synthetic(20_000, 1000, size=32, seed=0)
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; images/s, 32x32, "
          "width 16, bf16, channels_last")
    print(f"{'net':<10}{'batch':>6}{'graphs':>10}{'no graphs':>11}{'eager loop':>12}"
          f"{'ceiling':>10}{'/ceiling':>10}{'/eager':>8}{'norms':>8}{'first use':>11}")
    for depth in args.depths:
        for batch in args.batches:
            graphs = engine(depth, images, batch, args.steps, "require")
            off = engine(depth, images, batch, args.steps, "off")
            bare = engine(depth, images, batch, args.steps, "require", grad_every=0)
            loop = eager_loop(depth, images, batch, args.steps)
            top, first_use = ceiling(depth, images, batch, args.steps)
            print(f"ResNet-{depth:<3}{batch:>6}{graphs:>10.0f}{off:>11.0f}{loop:>12.0f}"
                  f"{top:>10.0f}{graphs / top:>10.2f}{graphs / loop:>8.2f}"
                  f"{bare / graphs:>8.3f}{first_use:>10.2f}s", flush=True)


if __name__ == "__main__":
    main()
