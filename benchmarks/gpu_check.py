"""The one-shot GPU check: everything a lent GPU should confirm, each part under its own time
budget, 8 minutes in all on one H100/H200. Needs nothing outside this repository.

    python3 tasks.py gpu-check OUTDIR          (or: python benchmarks/gpu_check.py OUTDIR)
    python benchmarks/gpu_check.py OUTDIR --dry-run    (any machine, a few minutes: every
                                   part with tiny sizes on the CPU, the CPU graph of graphs_cpu
                                   standing in for CUDA's; the lessons as one tiny notebook each)

The parts, one after the other (budget in seconds; not yet timed on a GPU, so a part or lesson
that runs out of time is stopped and reported "timed out" with its time, never silently):
  1. gpu tier     `pytest -m gpu`: the CUDA-relevant tests (tests/test_gpu.py)          90
  2. graphs       benchmarks/check_graphs.py: graphs="require" on ResNet-20/56, a resume
                  from a checkpoint at a changed lr, a recapture after set_skip          60
  3. bench_gpu    benchmarks/bench_gpu.py --steps 100: ResNet-20/56 at batch 128, 512    90
  4. lessons      the five lessons in full mode (benchmarks/run_lesson.py) in two lanes
                  side by side, each lesson under its own timeout (LESSON_SECONDS): lesson
                  2 (the longest: 280 s once, alone) in one lane, 1, 3, 4, 5 in the other  240
A part whose Python modules are missing here is skipped, with one line per module saying why
(the lessons need nbformat, nbclient, jupyter_client and ipykernel to run, and plotly,
ipywidgets and anywidget, which they import). Each command writes OUTDIR/<part>.txt (a lesson:
OUTDIR/lessons-<lesson>.txt); OUTDIR/summary.txt has every result, time and last lines.
Exit status: 0 all ran and passed, 1 something failed, 2 nothing failed but something timed
out or was skipped (so it is not verified).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LESSON_SECONDS = {"01_vanishing_gradients": 60, "02_residual_learning": 240,
                  "03_resnet_architectures": 60, "04_resnext": 60, "05_beyond_the_textbook": 60}
LANES = [["02_residual_learning"], ["01_vanishing_gradients", "03_resnet_architectures",
                                    "04_resnext", "05_beyond_the_textbook"]]
NEEDS = {"gpu tier": {"pytest": "it runs the tier's tests"},
         "lessons": {"nbformat": "benchmarks/run_lesson.py reads the notebooks with it",
                     "nbclient": "benchmarks/run_lesson.py executes the notebooks with it",
                     "jupyter_client": "nbclient starts the lessons' kernel with it",
                     "ipykernel": "it is the kernel the lessons run in",
                     "plotly": "the lessons import it (resnet_lab.pictures.plots, the app)",
                     "ipywidgets": "the lessons import it (the app's controls)",
                     "anywidget": "the lessons import it (the app's strip)"}}
TINY_LESSON = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                          "execution_count": None, "source": (
    "from resnet_lab import lessons\n"
    "lessons.verdict(lessons.Verdict('the kernel runs the lab', 2.0, 'imported'))")}],
    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@dataclass
class Job:
    """One command of a part, into its own log, under its own timeout."""
    label: str
    command: list[str]
    seconds: int
    log: Path


@dataclass
class Part:
    """A part of the check: lanes run side by side, each lane's jobs one after the other."""
    name: str
    budget: int
    lanes: list[list[Job]]


def parts(py: str, dry: bool, out: Path) -> list[Part]:
    """The check's parts. A dry run gets three times every budget: it runs on a CPU, maybe a
    busy one, and its lessons are a tiny notebook each."""
    flag, x = (["--dry-run"], 3) if dry else ([], 1)

    def one(name: str, budget: int, command: list[str]) -> Part:
        return Part(name, budget * x, [[Job(name, command, budget * x, out / f"{name}.txt")]])

    def lesson(name: str) -> Job:
        path = write_tiny_lesson(out, name) if dry else ROOT / "notebooks" / f"{name}.ipynb"
        return Job(f"lessons {name}", [py, "benchmarks/run_lesson.py", str(path), "--mode",
                                       "full"], LESSON_SECONDS[name] * x,
                   out / f"lessons-{name}.txt")

    return [one("gpu tier", 90, [py, "-m", "pytest", "-m", "gpu", "-q", "-o", "addopts=", "-p",
                                 "no:cacheprovider", "tests/test_gpu.py"]),
            one("graphs", 60, [py, "benchmarks/check_graphs.py", *flag]),
            one("bench_gpu", 90, [py, "benchmarks/bench_gpu.py", "--steps", "100", *flag]),
            Part("lessons", max(sum(LESSON_SECONDS[n] for n in lane) for lane in LANES) * x,
                 [[lesson(name) for name in lane] for lane in LANES])]


def write_tiny_lesson(out: Path, name: str) -> Path:
    path = out / "dry-run-lessons" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_LESSON))
    return path


def missing(part: str) -> list[str]:
    """One line per Python module `part` needs that is not installed here: what is skipped
    and why ([] when it can run)."""
    return [f"{part}: skipped: the module {module} is not installed here ({why}); install it "
            "(without internet: its wheel) to run this part"
            for module, why in NEEDS.get(part, {}).items()
            if importlib.util.find_spec(module) is None]


def run_job(job: Job, deadline: float, env: dict) -> str:
    """Run one command, stopped at its own timeout or the part's deadline: its result line,
    "ok", "FAILED", "timed out" or "not started", with its time."""
    seconds = min(job.seconds, deadline - time.perf_counter())
    if seconds < 1:
        return f"{job.label}: not started (the part's {job.seconds} s were spent before it)"
    start = time.perf_counter()
    with open(job.log, "w") as log:
        process = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                   env=env, start_new_session=True)
        try:
            code = process.wait(seconds)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)   # its kernel and workers too
            process.wait()
            code = None
    took = time.perf_counter() - start
    if code is None:
        return f"{job.label}: timed out after {took:.0f} s (its timeout {seconds:.0f} s)"
    return f"{job.label}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {took:.0f} s"


def run_part(part: Part, env: dict) -> tuple[str, str]:
    """Run a part's lanes side by side: its status ("ok", "FAILED", "timed out") and summary."""
    start = time.perf_counter()
    deadline, results = start + part.budget, [[] for _ in part.lanes]

    def lane(i: int) -> None:
        results[i] = [run_job(job, deadline, env) for job in part.lanes[i]]

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(len(part.lanes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [line for lane_results in results for line in lane_results]
    status = "FAILED" if any(": FAILED" in line for line in lines) else \
        "timed out" if any(": timed out" in line or ": not started" in line for line in lines) \
        else "ok"
    logs = [job.log for jobs in part.lanes for job in jobs if job.log.exists()]
    tail = [t for log in logs for t in
            [t for t in log.read_text().splitlines() if t.strip()][-max(2, 8 // len(logs)):]]
    header = (f"{part.name}: {status} in {time.perf_counter() - start:.0f} s "
              f"(budget {part.budget} s)")
    shown = lines if len(lines) > 1 or status != "ok" else []
    return status, "\n".join([header, *(f"  {line}" for line in shown),
                              *(f"    {t[:200]}" for t in tail)])


def main(argv: list[str]) -> int:
    dry = "--dry-run" in argv
    names = [a for a in argv if a != "--dry-run"]
    out = Path(names[0] if names else "gpu-check").resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           **({"RESNET_LAB_GPU_DRY_RUN": "1"} if dry else {})}
    plan = parts(sys.executable, dry, out)
    print(f"gpu_check{' --dry-run' if dry else ''}: {len(plan)} parts, budget "
          f"{sum(p.budget for p in plan)} s in all; results in {out}", flush=True)
    summary, statuses = [], {}
    for part in plan:
        print(f"-- {part.name} (budget {part.budget} s)", flush=True)
        skipped = missing(part.name)
        statuses[part.name], text = ("skipped", "\n".join(skipped)) if skipped else \
            run_part(part, env)
        summary.append(text)
        print(text, flush=True)
    summary.append(verdict(statuses))
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    print(summary[-1])
    return 1 if "FAILED" in statuses.values() else 0 if set(statuses.values()) == {"ok"} else 2


def verdict(statuses: dict[str, str]) -> str:
    """The summary's last line: what failed, else what is not verified (timed out, skipped)."""
    failed = [name for name, status in statuses.items() if status == "FAILED"]
    unverified = [f"{name} ({status})" for name, status in statuses.items()
                  if status in ("timed out", "skipped")]
    if failed:
        return f"gpu_check: FAILED: {', '.join(failed)}" + (
            f"; not verified: {', '.join(unverified)}" if unverified else "")
    return f"gpu_check: nothing failed; not verified: {', '.join(unverified)}" if unverified \
        else "gpu_check: all parts ok"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
