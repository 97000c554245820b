"""The grid on a Ray cluster: each grid run a Ray task (`pip install "resnet-lab[cluster]"`).

Every task calls the same `grid.train_one` as the in-process grid, asks for `cpus_per_run` CPUs
and `gpus_per_run` GPUs (fractional: four small nets can share a GPU), and is retried once by
Ray when it raises. Results come back to the driver, which writes them, so no shared filesystem
is needed; the tasks report their steps to a small actor, so the driver's bar moves while they
train.
"""

from __future__ import annotations

import os
import time

from ..training.callbacks import Callback
from ..training.run import Run
from .runs import Grid, GridFolder, GridProgress, GridRun, record_outcome, train_one


class StepCounter:
    """Where each Ray task is (a Ray actor: the tasks report, the driver reads)."""

    def __init__(self):
        self.steps: dict[str, int] = {}

    def report(self, run: str, step: int) -> None:
        self.steps[run] = step

    def read(self) -> dict[str, int]:
        return self.steps


class StepReporter(Callback):
    """A Ray task's training callback: its step to the StepCounter, at most every 2 s."""

    def __init__(self, counter, run: str, every_seconds: float = 2.0):
        self.counter, self.run, self.every, self.sent = counter, run, every_seconds, 0.0

    def on_start(self, run: Run) -> None:
        self.send(run.step)

    def on_step(self, run: Run) -> None:
        if time.monotonic() - self.sent >= self.every:
            self.send(run.step)

    def send(self, step: int) -> None:
        self.counter.report.remote(self.run, step)
        self.sent = time.monotonic()


def run_on_ray(grid: Grid, todo: list[GridRun], folder: GridFolder, progress: GridProgress,
               *, address: str, cpus_per_run: float, gpus_per_run: float,
               checkpoint_seconds: float) -> None:
    """Each grid run as a Ray task asking for `cpus_per_run` CPUs and `gpus_per_run` GPUs
    (fractional: four small nets can share a GPU), on the Ray cluster at `address` ("auto":
    the running one), or on a local one started for the call when there is none ("local":
    always). A task that raises is retried once by Ray. Results come back to this process,
    which writes them: no shared filesystem is needed (checkpoints are written where the task
    runs, into the same path)."""
    ray = connect(address)
    remote = ray.remote(train_one).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run,
                                           max_retries=1, retry_exceptions=True)
    counter = ray.remote(StepCounter).options(num_cpus=0).remote()
    threads = max(1, int(cpus_per_run))
    pending = {remote.remote(grid, cell, threads=threads,
                             checkpoint=folder.path("checkpoints", cell).resolve(),
                             checkpoint_seconds=checkpoint_seconds,
                             callbacks=[StepReporter(counter, cell.file)]): cell
               for cell in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            unfinished = {cell.file for cell in pending.values()}
            for run, step in ray.get(counter.read.remote()).items():
                if run in unfinished:
                    progress.advance(run, step)
            for ref in done:
                cell = pending.pop(ref)
                try:
                    record_outcome(folder, progress, cell, ray.get(ref), "")
                except Exception as err:         # the task raised twice: report it, go on
                    record_outcome(folder, progress, cell, None,
                                   str(getattr(err, "cause", None) or err))
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def connect(address: str):
    """Ray, connected: to the cluster at `address` ("auto": the running one, else a local one
    started here; "local": always a local one, without the dashboard)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError('--ray needs Ray: pip install "resnet-lab[cluster]"') from None
    if ray.is_initialized():
        return ray
    if address != "local":
        try:
            ray.init(address=address, log_to_driver=False)
            print(f"ray: connected to the cluster at {address}")
            return ray
        except ConnectionError:
            if address != "auto":
                raise
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    print(f"ray: started a local cluster with {os.cpu_count()} CPUs")
    return ray
