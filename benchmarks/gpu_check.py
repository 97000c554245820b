"""The one-shot GPU check: everything a lent GPU should confirm, each part with its own timeout.

    python benchmarks/gpu_check.py OUTDIR        (from the project root, on the GPU machine;
                                                  see ../shared/notes/gpu.md for the set-up)

Writes under OUTDIR, one file per part, and prints a summary:
  1. require.txt    graphs="require" on ResNet-20 and ResNet-56 (the captured step must not
                    fall back: capture, self-check and replays all on the hardware)
  2. bench_gpu.txt  benchmarks/bench_gpu.py
  3. pytest.txt     the unit tests (their device-sensitive ones run on CUDA too); no browser,
                    no nbval
  4. lessons.txt    the five lessons in full mode (.gpu/runnb.py), verdicts and times
Budget: about 8 minutes on one H200.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REQUIRE = """
import resnet_lab as rl
from resnet_lab import data, train
images = data.synthetic(20_000, 1000, size=32, seed=0)
for depth in (20, 56):
    h = train.fit(rl.cifar_resnet(depth, seed=0), images, steps=60, recipe="constant",
                  graphs="require", name=f"ResNet-{depth}")
    print(f"ResNet-{depth}: {h.setup['engine']}, {h.status}, loss {h.train_loss[0]:.3f} -> "
          f"{h.final_train_loss(10):.3f}, {60 / h.seconds:.1f} steps/s")
"""

LESSONS = ["01_vanishing_gradients.ipynb", "02_residual_learning.ipynb",
           "03_resnet_architectures.ipynb", "04_resnext.ipynb", "05_beyond_the_textbook.ipynb"]


def part(out: Path, name: str, command: list[str], timeout: int, env: dict | None = None
         ) -> str:
    """Run one part into OUTDIR/name; its last line, or why it did not finish."""
    start = time.perf_counter()
    with open(out / name, "w") as f:
        try:
            code = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, timeout=timeout,
                                  env={**os.environ, **(env or {})}).returncode
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout} s"
    lines = (out / name).read_text().strip().splitlines() or ["(no output)"]
    return f"{name}: exit {code}, {time.perf_counter() - start:.0f} s: {lines[-1][:200]}"


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "gpu-check")
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    summary = [
        part(out, "require.txt", [py, "-c", REQUIRE], 90),
        part(out, "bench_gpu.txt", [py, "benchmarks/bench_gpu.py", "--steps", "150"], 150),
        part(out, "pytest.txt", [py, "-m", "pytest", "-q", "-o", "addopts=", "tests",
                                 "--ignore=tests/test_browser.py", "-p", "no:cacheprovider"],
             150),
    ]
    runner = Path(".gpu/runnb.py")
    if runner.exists():
        deadline = time.time() + 200
        summary.append(part(out, "lessons.txt", [py, str(runner), str(out), str(deadline),
                                                 *LESSONS], 210, {"RESNET_LAB_MODE": "full"}))
    else:
        summary.append("lessons.txt: skipped (no .gpu/runnb.py: run ../shared/gpu-kit/"
                       "make-payload.sh first)")
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
