"""The benchmarks measure fairly and the GPU check runs as written (read from their sources:
the benchmarks themselves are run by hand, never timed in tests)."""

import ast
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
    for dry in (False, True):
        plan = gpu_check.parts(sys.executable, dry, tmp_path)
        assert [name for name, *_ in plan] == ["gpu tier", "graphs", "bench_gpu", "lessons"]
        assert sum(budget for _, budget, _ in plan) <= 8 * 60 * (3 if dry else 1)
        assert plan[0][1] <= 90 * (3 if dry else 1)
        for _, _, commands in plan:
            for command in commands:
                files = [a for a in command[1:] if a.endswith((".py", ".ipynb"))]
                assert all((gpu_check.ROOT / f).exists() for f in files), files
    assert ".gpu" not in (BENCHMARKS / "gpu_check.py").read_text()
    assert "../" not in (BENCHMARKS / "gpu_check.py").read_text()
