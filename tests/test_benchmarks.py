"""The benchmarks measure fairly and the GPU check runs as written (read from their sources:
the benchmarks themselves are run by hand, never timed in tests)."""

import ast
import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import gpu_check  # noqa: E402

TIMED = ["bench_gpu.py", "bench_train.py", "bench_instruments.py"]


def calls(node: ast.AST) -> list[str]:
    """The names of the functions a piece of code calls (`torch.cuda.synchronize` -> that)."""
    return [ast.unparse(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)]


@pytest.mark.parametrize("name", TIMED)
def test_a_timed_loop_synchronizes_only_through_the_stopwatch(name):
    """Every clock is timing.py's: no sync or clock of a benchmark's own, inside a loop or not."""
    source = (BENCHMARKS / name).read_text()
    own = [c for c in calls(ast.parse(source))
           if c.endswith(("synchronize", "perf_counter", "time.time", ".item", ".tolist"))]
    assert not own and "from timing import" in source, own


def test_the_stopwatch_synchronizes_once_before_the_clock_starts_and_once_before_it_stops():
    tree = ast.parse((BENCHMARKS / "timing.py").read_text())
    methods = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for name in ("start", "stop"):
        body = calls(methods[name])
        assert body.count("synchronize") == 1
        assert body.index("synchronize") < body.index("time.perf_counter")
    syncing = [n for n, f in methods.items() if "torch.cuda.synchronize" in calls(f)]
    assert syncing == ["synchronize"]
    assert not any("synchronize" in calls(methods[n]) for n in ("on_step", "__init__"))


def test_the_gpu_check_needs_nothing_outside_the_repository_and_fits_its_budget(tmp_path):
    """8 minutes in all (a dry run: three times that); every lesson once, under its own
    timeout, in at most two lanes whose timeouts fit the lessons' budget."""
    for dry in (False, True):
        x = 3 if dry else 1
        plan = gpu_check.parts(sys.executable, dry, tmp_path)
        assert [p.name for p in plan] == ["gpu tier", "graphs", "bench_gpu", "lessons"]
        assert sum(p.budget for p in plan) <= 8 * 60 * x and plan[0].budget <= 90 * x
        lessons = plan[-1]
        assert len(lessons.lanes) <= 2
        assert sorted(job.label for lane in lessons.lanes for job in lane) == sorted(
            f"lessons {name}" for name in gpu_check.LESSON_SECONDS)
        assert all(sum(job.seconds for job in lane) <= lessons.budget for lane in lessons.lanes)
        for part in plan:
            for job in (job for lane in part.lanes for job in lane):
                files = [a for a in job.command[1:] if a.endswith((".py", ".ipynb"))]
                assert all((gpu_check.ROOT / f).exists() for f in files), files
    assert ".gpu" not in (BENCHMARKS / "gpu_check.py").read_text()
    assert "../" not in (BENCHMARKS / "gpu_check.py").read_text()


def test_the_dry_runs_tiny_lesson_runs_against_the_package(capsys):
    """--dry-run stands a one-cell lesson in for each real one: its code imports what the
    package has and prints a verdict."""
    exec("".join(gpu_check.TINY_LESSON["cells"][0]["source"]), {})
    assert capsys.readouterr().out.startswith("VERDICT the kernel runs the lab")


def job(tmp_path, label, code, seconds):
    return gpu_check.Job(label, [sys.executable, "-c", code], seconds, tmp_path / f"{label}.txt")


@pytest.mark.slow
def test_the_gpu_check_reports_a_lesson_out_of_time_and_the_others_go_on(tmp_path):
    """Two lanes: in the first a lesson that never ends (stopped at its own 2 s) and one after
    it; in the second a lesson that fails. Each gets its own line; the part fails for the
    failure, not for the time-out, which is named with its time."""
    part = gpu_check.Part("lessons", 30, [
        [job(tmp_path, "slow", "import time; time.sleep(60)", 2),
         job(tmp_path, "after", "print('VERDICT done')", 20)],
        [job(tmp_path, "broken", "raise SystemExit(3)", 20)]])
    status, text = gpu_check.run_part(part, dict(os.environ))
    lines = text.splitlines()
    assert status == "FAILED" and lines[0].startswith("lessons: FAILED in ")
    assert any(line.strip().startswith("slow: timed out after 2 s") for line in lines), text
    assert any(line.strip().startswith("after: ok in") for line in lines), text
    assert any(line.strip().startswith("broken: FAILED (exit 3)") for line in lines), text
    part.lanes.pop()
    assert gpu_check.run_part(part, dict(os.environ))[0] == "timed out"


def test_the_gpu_check_skips_a_part_whose_module_is_missing(tmp_path, monkeypatch, capsys):
    """The GPU machine lacks nbclient and ipykernel: the lessons are skipped, one line per
    module naming the part and why; the rest runs; the exit status says "not verified" (2)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name in (
        "nbclient", "ipykernel") else real(name, *args))
    monkeypatch.setattr(gpu_check, "parts", lambda py, dry, out: [
        gpu_check.Part(name, 20, [[job(tmp_path, name, "pass", 20)]])
        for name in ("graphs", "lessons")])
    assert gpu_check.main([str(tmp_path / "out")]) == 2
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("lessons: skipped")]
    assert len(skipped) == 2 and "nbclient" in skipped[0] and "ipykernel" in skipped[1]
    assert "graphs: ok" in out and out.splitlines()[-1] == (
        "gpu_check: nothing failed; not verified: lessons (skipped)")
    assert "lessons: skipped: the module nbclient" in (tmp_path / "out" / "summary.txt"
                                                      ).read_text()
