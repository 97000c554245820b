"""The captured step on the hardware, graphs="require" (no fall-back allowed): part 2 of
gpu_check.py.

    python benchmarks/check_graphs.py [--dry-run]

1. ResNet-20 and ResNet-56 train 60 steps through CUDA graphs (capture, self-check, replays).
2. A resume at a changed lr: a run stopped at step 20 of 40 is resumed from its checkpoint
   with another lr; the step must keep reading the lr from its own tensor, at the new value.
3. A recapture: set_skip at step 30 of 60; the step recaptures (2 captures) and goes on.
Prints one line per check and "FAILED" in those that fail; exits non-zero if any does.
`--dry-run`: tiny sizes on the CPU, the CPU graph of graphs_cpu standing in for CUDA's.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
from pathlib import Path

import torch

import resnet_lab as rl
from resnet_lab.training import callbacks, data, graphs_cpu, recipes, train
from resnet_lab.training.checkpoint import Checkpoint
from resnet_lab.training.run import Run


class Inspect(callbacks.Callback):
    """Keeps the run's steppers; stops the run at `stop_at`; sets skip gates at `skip_at`."""

    def __init__(self, stop_at: int | None = None, skip_at: int | None = None):
        self.stop_at, self.skip_at, self.stop = stop_at, skip_at, threading.Event()
        self.steppers = {}

    def on_step(self, run: Run) -> None:
        if run.step == self.stop_at:
            self.stop.set()
        if run.step == self.skip_at:
            for model in run.models.values():
                rl.set_skip(model, 0.5)

    def on_end(self, run: Run) -> None:
        self.steppers = dict(run.steppers)


def fit(depth: int, images: data.Dataset, steps: int, sizes: dict, recipe="constant",
        callbacks=(), stop=None) -> train.History:
    return train.fit(rl.cifar_resnet(depth, width=sizes["width"], seed=0), images, steps=steps,
                     batch_size=sizes["batch"], recipe=recipe, graphs="require",
                     eval_every=10 * steps, device=sizes["device"], callbacks=callbacks,
                     stop=stop, name=f"ResNet-{depth}")


def line(ok: bool, text: str) -> bool:
    print(("ok      " if ok else "FAILED  ") + text, flush=True)
    return ok


def trains(depth: int, images: data.Dataset, sizes: dict) -> bool:
    h = fit(depth, images, 60, sizes)
    return line(h.setup["engine"] == "cuda graph" and h.status == "finished",
                f"ResNet-{depth}: {h.setup['engine']}, {h.status}, loss {h.train_loss[0]:.3f} "
                f"-> {h.final_train_loss(10):.3f}, {60 / h.seconds:.1f} steps/s")


def resumes_at_a_new_lr(depth: int, images: data.Dataset, sizes: dict, folder: Path) -> bool:
    path, first = folder / f"resume-{depth}.pt", Inspect(stop_at=20)
    fit(depth, images, 40, sizes, callbacks=[Checkpoint(path, every_steps=20), first],
        stop=first.stop)
    inspect = Inspect()
    h = fit(depth, images, 40, sizes, recipes.with_lr("constant", 0.05),
            callbacks=[Checkpoint(path), inspect])
    s = next(iter(inspect.steppers.values()))
    reads_own = s.optimizer.param_groups[0]["lr"] is getattr(s, "lr", None)
    ok = reads_own and abs(float(s.lr) - 0.05) < 1e-7 and h.lr[-1] == 0.05 and h.step[-1] == 40
    return line(ok, f"ResNet-{depth} resumed at step 20 with lr 0.05: {h.setup['engine']}, "
                    f"the optimizer reads the step's lr tensor: {reads_own}, "
                    f"lr {float(getattr(s, 'lr', float('nan'))):g}")


def recaptures(depth: int, images: data.Dataset, sizes: dict) -> bool:
    inspect = Inspect(skip_at=30)
    h = fit(depth, images, 60, sizes, callbacks=[inspect])
    s = next(iter(inspect.steppers.values()))
    captures = getattr(s, "captures", 0)
    return line(h.setup["engine"] == "cuda graph" and captures == 2,
                f"ResNet-{depth} with set_skip at step 30: {h.setup['engine']}, {captures} "
                f"captures, loss {h.final_train_loss(10):.3f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("check_graphs.py needs a CUDA GPU (or --dry-run)")
    sizes = ({"device": "cpu", "width": 4, "batch": 16, "size": 8, "depths": (8,)}
             if args.dry_run else
             {"device": "cuda", "width": 16, "batch": 128, "size": 32, "depths": (20, 56)})
    images = data.synthetic(2_000, 100, size=sizes["size"], seed=0)
    with graphs_cpu.stand_in() if args.dry_run else contextlib.nullcontext(), \
            tempfile.TemporaryDirectory() as folder:
        results = [check for depth in sizes["depths"] for check in (
            trains(depth, images, sizes), resumes_at_a_new_lr(depth, images, sizes, Path(folder)),
            recaptures(depth, images, sizes))]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
