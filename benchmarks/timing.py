"""How every benchmark times a loop, on any device: synchronize once before the clock starts
and once before it stops, never inside (a sync inside would slow one side of a ratio only).

    watch = Stopwatch(device)
    watch.start()
    for ...: step()
    seconds = watch.stop()

`StepClock` does the same for `train.compare`, as a callback: its clock runs from the end of
step `start_at` to the end of step `stop_at`.
"""

from __future__ import annotations

import time

import torch

from resnet_lab.training import callbacks


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work (the CPU has none)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Stopwatch:
    """Seconds of a timed region, the device's queue empty at both ends."""

    def __init__(self, device: str | torch.device):
        self.device, self.started, self.seconds = torch.device(device), 0.0, 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.started = time.perf_counter()

    def stop(self) -> float:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.started
        return self.seconds


class StepClock(callbacks.Callback):
    """Times the steps `start_at + 1 ... stop_at` of a run (warm-up and capture left out)."""

    def __init__(self, start_at: int, stop_at: int):
        self.start_at, self.stop_at, self.watch = start_at, stop_at, None

    def on_step(self, run) -> None:
        if run.step == self.start_at:
            self.watch = Stopwatch(run.device)
            self.watch.start()
        elif run.step == self.stop_at:
            self.watch.stop()

    def images_per_second(self, batch: int) -> float:
        return (self.stop_at - self.start_at) * batch / self.watch.seconds
