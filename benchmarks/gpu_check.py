"""The one-shot GPU check: everything a lent GPU should confirm, each part under its own time
budget, in about 8 minutes on one H100/H200. Needs nothing outside this repository.

    python3 tasks.py gpu-check OUTDIR          (or: python benchmarks/gpu_check.py OUTDIR)
    python benchmarks/gpu_check.py OUTDIR --dry-run    (any machine, about 2 minutes: every
                                   part with tiny sizes on the CPU, the CPU graph of graphs_cpu
                                   standing in for CUDA's; the lessons as one tiny notebook each)

The parts (budget in seconds; a part over its budget is stopped and fails):
  1. gpu tier     `pytest -m gpu`: the CUDA-relevant tests (tests/test_gpu.py)          90
  2. graphs       benchmarks/check_graphs.py: graphs="require" on ResNet-20/56, a resume
                  from a checkpoint at a changed lr, a recapture after set_skip          90
  3. bench_gpu    benchmarks/bench_gpu.py --steps 100: ResNet-20/56 at batch 128, 512   120
  4. lessons      the five lessons in full mode (benchmarks/run_lesson.py), side by side,
                  each under its own timeout                                             180
Each part's output goes to OUTDIR/<part>.txt; OUTDIR/summary.txt has every part's result,
time and last lines. Exits 1 when any part fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ["01_vanishing_gradients", "02_residual_learning", "03_resnet_architectures",
           "04_resnext", "05_beyond_the_textbook"]
TINY_LESSON = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                          "execution_count": None, "source": (
    "from resnet_lab import lesson\n"
    "lesson.verdict(lesson.Verdict('the kernel runs the lab', 2.0, 'imported'))")}],
    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def parts(py: str, dry: bool, out: Path) -> list[tuple[str, int, list[list[str]]]]:
    """(name, budget in seconds, the commands it runs side by side) for each part. A dry run
    gets three times the budget: it runs on a CPU, maybe a busy one."""
    flag, x = (["--dry-run"], 3) if dry else ([], 1)
    lessons = ([str(write_tiny_lesson(out, name)) for name in LESSONS] if dry else
               [str(ROOT / "notebooks" / f"{name}.ipynb") for name in LESSONS])
    return [
        ("gpu tier", 90 * x, [[py, "-m", "pytest", "-m", "gpu", "-q", "-o", "addopts=",
                           "-p", "no:cacheprovider", "tests/test_gpu.py"]]),
        ("graphs", 90 * x, [[py, "benchmarks/check_graphs.py", *flag]]),
        ("bench_gpu", 120 * x, [[py, "benchmarks/bench_gpu.py", "--steps", "100", *flag]]),
        ("lessons", 180 * x, [[py, "benchmarks/run_lesson.py", path, "--mode", "full"]
                          for path in lessons]),
    ]


def write_tiny_lesson(out: Path, name: str) -> Path:
    path = out / "dry-run-lessons" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_LESSON))
    return path


def run_part(out: Path, name: str, budget: int, commands: list[list[str]], env: dict) -> str:
    """Run a part's commands side by side (each into a log of its own), all stopped at the
    budget; the part's summary lines."""
    start, stem = time.perf_counter(), name.replace(" ", "_")
    logs = [out / (f"{stem}.txt" if len(commands) == 1 else f"{stem}-{i + 1}.txt")
            for i in range(len(commands))]
    codes: list = []
    with contextlib.ExitStack() as files:
        running = [subprocess.Popen(c, stdout=files.enter_context(open(log, "w")), cwd=ROOT,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
                   for c, log in zip(commands, logs, strict=True)]
        for process in running:
            try:
                codes.append(process.wait(max(1.0, start + budget - time.perf_counter())))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)   # its kernels and workers too
                codes.append(f"stopped at its budget of {budget} s")
    seconds, ok = time.perf_counter() - start, all(code == 0 for code in codes)
    tail = [line for log in logs for line in
            [t for t in log.read_text().splitlines() if t.strip()][-(8 // len(logs)) - 1:]]
    return "\n".join([f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.0f} s (budget {budget} s"
                      f"{'' if ok else f'; exit {codes}'})", *(f"    {t[:200]}" for t in tail)])


def main(argv: list[str]) -> int:
    dry = "--dry-run" in argv
    names = [a for a in argv if a != "--dry-run"]
    out = Path(names[0] if names else "gpu-check").resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           **({"RESNET_LAB_GPU_DRY_RUN": "1"} if dry else {})}
    plan = parts(sys.executable, dry, out)
    print(f"gpu_check{' --dry-run' if dry else ''}: {len(plan)} parts, budget "
          f"{sum(b for _, b, _ in plan)} s in all; results in {out}", flush=True)
    summary = []
    for name, budget, commands in plan:
        print(f"-- {name} (budget {budget} s)", flush=True)
        summary.append(run_part(out, name, budget, commands, env))
        print(summary[-1], flush=True)
    failed = [s.split(":")[0] for s in summary if ": FAILED" in s.splitlines()[0]]
    summary.append(f"gpu_check: {'FAILED: ' + ', '.join(failed) if failed else 'all parts ok'}")
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    print(summary[-1])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
