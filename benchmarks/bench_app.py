"""The app's speed as a student meets it: first paint, a click on the strip, training.

    python benchmarks/bench_app.py [--visits 3] [--steps 150] [--skip-browser] [--busy N]

1. First paint in Voilà (`python3 tasks.py app`, a preheated kernel), in Debian's Chromium: from
   the page request to the explorer's profile plot and strip drawn. The same with
   `--preheat_kernel=False` in the same run, for the ratio. Target: <= 5 s on 2 cores.
2. Explorer, a click on a block of the strip at depth 110: the time until the profile, the
   strip and its plot hold the new state (kernel side), median and p95, for a click that cuts
   a block not cut before (a new state) and for the click that restores it (a state seen
   before, answered from the profile cache). Target: <= 150 ms.
3. Training lab, plain-56 + ResNet-56: steps/s with the live plots on and off, alternated in
   one run; their ratio is what the live plots cost. Target: <= 10%.

First it prints `bench_train.py`'s minimal-loop speed (ResNet-20, batch 128, 32x32, images/s),
so a reader can tell which machine the numbers came from. `--busy N` runs N busy-loop
processes beside the whole benchmark: a slower machine of the same kind, measured as such by
that first line.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from bench_train import minimal_loop  # benchmarks/, the folder of this script

import resnet_lab as rl
from resnet_lab.app import Explorer, TrainingLab
from resnet_lab.training import data

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update"]


def first_paints(extra: list[str], visits: int, port: int) -> list[float]:
    """Seconds from request to first paint, per visit, against `tasks.py app` + `extra`."""
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen([sys.executable, "tasks.py", "app", f"--port={port}", *extra],
                              cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.5)
        times = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM)
            for _ in range(visits):
                time.sleep(20)                   # a kernel is (re)heated meanwhile, if asked
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
                page.wait_for_selector(".profile-plot.js-plotly-plot", timeout=120_000)
                page.wait_for_selector(".strip-cell", timeout=120_000)
                times.append(time.perf_counter() - start)
                page.close()
            browser.close()
        return times
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def block_clicks(repeats: int) -> tuple[list[float], list[float]]:
    """Milliseconds per strip click at depth 110, models built as after the warm-up: a click
    that cuts a block not cut before (a new state: one forward and backward pass), and the
    click that restores it (a state seen before: the profile comes from the cache)."""
    explorer = Explorer()
    explorer.apply_preset("ResNet-56")
    explorer.depth.value = 110
    explorer.warm_thread.join()
    new, seen = [], []
    for i in range(repeats):
        button = explorer.strip.buttons[1 + i]           # block i (cell 0 is the stem)
        for times in (new, seen):
            start = time.perf_counter()
            button.click()
            times.append(1000 * (time.perf_counter() - start))
    return new, seen


def steps_per_second(live: bool, steps: int) -> float:
    lab = TrainingLab(dataset="synthetic")          # the same data on every machine
    lab.depth.value, lab.steps.value, lab.live.value = 56, steps, live
    lab.start()
    lab.thread.join()
    return min(len(h.step) for h in lab.histories.values()) / \
        max(h.seconds for h in lab.histories.values())


def machine_speed(repeats: int = 3) -> float:
    """bench_train's minimal loop, ResNet-20 at batch 128 on 32x32 images: images/s."""
    images = data.synthetic(10_000, 256, size=32)
    return statistics.median(minimal_loop(rl.cifar_resnet(20, seed=0), images, 25, 128,
                                          torch.device("cpu")) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=3)
    parser.add_argument("--steps", type=int, default=140)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--skip-browser", action="store_true")
    parser.add_argument("--busy", type=int, default=0,
                        help="busy-loop processes beside the benchmark (a slower machine)")
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.busy)]
    try:
        measure(args)
    finally:
        for spinner in spinners:
            spinner.kill()


def measure(args: argparse.Namespace) -> None:
    print(f"machine: bench_train's minimal loop at {machine_speed():.0f} images/s "
          f"({args.busy} busy processes beside it)")
    if not args.skip_browser:
        warm = first_paints([], args.visits, 8881)
        cold = first_paints(["--preheat_kernel=False"], args.visits, 8882)
        hot, plain = statistics.median(warm), statistics.median(cold)
        print(f"first paint, preheated kernel: median {hot:.1f} s "
              f"({', '.join(f'{t:.1f}' for t in warm)}); without: {plain:.1f} s; "
              f"ratio {hot / plain:.2f}")
    new, seen = block_clicks(args.repeats)
    for what, clicks in (("cuts a new block", new), ("restores it", seen)):
        print(f"strip click at depth 110 that {what}: median {np.median(clicks):.0f} ms, "
              f"p95 {np.percentile(clicks, 95):.0f} ms")
    on, off = [], []
    for _ in range(2):                                   # alternate, so drift hits both alike
        off.append(steps_per_second(False, args.steps))
        on.append(steps_per_second(True, args.steps))
    a, b = statistics.median(off), statistics.median(on)
    print(f"training lab, plain-56 + ResNet-56: {a:.2f} steps/s without live plots, "
          f"{b:.2f} with; cost of the live plots: ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
