"""The same small grid two ways, in one run: in this process (one run at a time, with all the
CPU threads) vs Ray on a local cluster (one 1-thread run per CPU at a time).

    .venv/bin/python benchmarks/bench_reproduce.py [--steps 150]

Prints both wall times and the ratio in-process / Ray (> 1: Ray is faster); Ray's time
includes starting the local cluster, which is printed too. On 2 cores the question is whether
two 1-thread runs at once beat one 2-thread run at a time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from resnet_lab.grid.reproduce import reproduce
from resnet_lab.grid.runs import Grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    grid = Grid(depths=(14, 20, 32), seeds=2, steps=args.steps, dataset="synthetic", size=16,
                n_train=4096, width=8)
    cpus = os.cpu_count() or 1
    print(f"grid: {len(grid.runs())} runs (plain and ResNet, depths {grid.depths}, "
          f"{grid.seeds} seeds, {grid.steps} steps, synthetic 16x16, width {grid.width}); "
          f"{cpus} CPUs, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as here, tempfile.TemporaryDirectory() as there:
        start = time.perf_counter()
        reproduce(grid, here, threads=cpus, quiet=True)
        in_process = time.perf_counter() - start
        print(f"in-process, one run at a time with {cpus} threads: {in_process:.1f} s")

        import ray
        start = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - start
        reproduce(grid, there, ray=True, cpus_per_run=1, quiet=True)
        on_ray = time.perf_counter() - start
        ray.shutdown()
        print(f"Ray, {cpus} runs at a time with 1 thread each: {on_ray:.1f} s "
              f"({started:.1f} s of it starting the local cluster)")
    print(f"ratio in-process / Ray: {in_process / on_ray:.2f} "
          f"(without the cluster's start: {in_process / (on_ray - started):.2f})")


if __name__ == "__main__":
    main()
