"""How much do the gradient-flow instruments cost? Ratios measured in one run, interleaved.

    python benchmarks/bench_instruments.py [--steps 7] [--device cpu|cuda]

1. GradientNorms recording every step, on cifar_resnet(56) at batch 128, 32x32: median train
   step with the instrument over the median without (target: <= 1.03 on CPU, <= 1.05 on GPU).
2. gradient_profile latency (median, p95) for the explorer's settings.
"""

import argparse
import statistics

import numpy as np
import torch
import torch.nn.functional as F
from timing import Stopwatch  # benchmarks/, the folder of this script

import resnet_lab as rl
from resnet_lab.instruments.hooks import GradientNorms, gradient_profile


def train_step(model, opt, x, y, device) -> float:
    """The seconds of one step (each step is a timed region of its own)."""
    watch = Stopwatch(device)
    watch.start()
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return watch.stop()


def overhead(device: str, steps: int, depth: int = 56, batch: int = 128) -> None:
    model = rl.cifar_resnet(depth, seed=0).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    for _ in range(2):                                   # warm-up
        train_step(model, opt, x, y, device)
    plain, watched = [], []
    for i in range(2 * steps):                            # interleave: off, on, off, on ...
        if i % 2:
            with GradientNorms(model):
                watched.append(train_step(model, opt, x, y, device))
        else:
            plain.append(train_step(model, opt, x, y, device))
    a, b = statistics.median(plain), statistics.median(watched)
    print(f"GradientNorms on cifar_resnet({depth}), batch {batch}, {device}: "
          f"{a * 1e3:.0f} ms -> {b * 1e3:.0f} ms per step, overhead ratio {b / a:.3f}")


def latency(device: str, depth: int, size: int, batch: int = 8, repeats: int = 21) -> None:
    torch.manual_seed(0)
    model = rl.cifar_resnet(depth).to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    gradient_profile(model, x, y)
    times = []
    watch = Stopwatch(device)
    for _ in range(repeats):
        watch.start()
        gradient_profile(model, x, y)
        times.append(watch.stop())
    ms = np.array(times) * 1e3
    print(f"gradient_profile depth {depth:3d}, batch {batch}, {size}x{size}, {device}: "
          f"median {np.median(ms):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    overhead(args.device, args.steps)
    for depth, size in ((20, 32), (56, 32), (110, 32), (110, 16)):
        latency(args.device, depth, size)


if __name__ == "__main__":
    main()
