"""What does the captured step's per-step hook check cost? A ratio measured in one run.

    python benchmarks/bench_hook_check.py [--steps 7] [--depth 8]

`CapturedStep.hooks_added()` runs before every step (a hook added after capture would not run
in a replay). Its median time over the median eager training step of cifar_resnet(depth) at
batch 128, 32x32, on the CPU (target: well under 0.01). The check does not depend on the
device; on a GPU a replayed step is shorter, so the ratio for ResNet-56 is printed too.
"""

import argparse
import statistics

import torch
from timing import Stopwatch  # benchmarks/, the folder of this script

import resnet_lab as rl
from resnet_lab.training import captured, graphs_cpu, step

CHECKS = 1000      # checks per timed region: one alone is below the clock's resolution


def step_seconds(depth: int, steps: int, g: torch.Generator) -> float:
    """The median seconds of an eager training step."""
    model = rl.cifar_resnet(depth, seed=0)
    s = step.Step(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
    x, y = torch.randn(128, 3, 32, 32, generator=g), torch.randint(0, 10, (128,), generator=g)
    s(x, y)                                                   # warm-up
    times = []
    for _ in range(steps):
        watch = Stopwatch("cpu")
        watch.start()
        s(x, y)
        times.append(watch.stop())
    return statistics.median(times)


def check_seconds(depth: int, steps: int) -> float:
    """The median seconds of one `hooks_added()` (no hook attached: the common case)."""
    s = captured.CapturedStep(rl.cifar_resnet(depth, seed=0), lr=0.1, momentum=0.9,
                              weight_decay=0.0, backend=graphs_cpu.CpuGraphs())
    times = []
    for _ in range(steps):
        watch = Stopwatch("cpu")
        watch.start()
        for _ in range(CHECKS):
            s.hooks_added()
        times.append(watch.stop() / CHECKS)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--depth", type=int, default=8)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    check, train = check_seconds(args.depth, args.steps), step_seconds(args.depth, args.steps, g)
    print(f"ResNet-{args.depth}, CPU, batch 128: hook check {check * 1e6:.1f} us, "
          f"eager step {train * 1e3:.1f} ms, ratio {check / train:.2e} (target < 1e-2)")
    print(f"ResNet-56: hook check {check_seconds(56, args.steps) * 1e6:.1f} us a step "
          "(a graph replay of ResNet-56 at batch 128 on an H200: about 6 ms)")


if __name__ == "__main__":
    main()
