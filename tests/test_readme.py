"""The code of README.md, ARCHITECTURE.md and docs/*.md runs as written and prints what it says.

Every fenced block is either run here or marked, on the line right before it, with
`<!-- not run: why -->` (a server, a long run, conda, a notebook cell, printed output). A page's
Python blocks run in order in one fresh interpreter, as a reader pasting them one after another
would; every `print` line carries, in its trailing comment, what it prints. The bash blocks run
in a scratch folder, with `.venv/bin/resnet-lab` meaning this interpreter's `resnet_lab`. Every
file a page links to exists.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, ROOT / "ARCHITECTURE.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\S*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
NOT_RUN = re.compile(r"^\s*<!-- not run: \S[^>]* -->\s*$")
RUNNABLE = ("python", "bash")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int        # where its fence opens, 1-based
    marked: bool     # `<!-- not run: ... -->` right before it


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, their indentation removed."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = text[:m.start()].splitlines()
        code = "\n".join(line[len(m["indent"]):] for line in m["body"].splitlines())
        found.append(Block(m["lang"], code, len(before) + 1,
                           bool(before) and bool(NOT_RUN.match(before[-1]))))
    return found


def to_run(page: Path, lang: str) -> list[Block]:
    return [b for b in blocks(page) if b.lang == lang and not b.marked]


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_every_fence_runs_or_is_marked():
    fences = sum(line.lstrip().startswith("```") for line in README.read_text().splitlines())
    assert len(blocks(README)) == fences // 2, "the fence pattern missed a README block"
    for page in PAGES:
        unmarked = [f"line {b.line} ({b.lang or 'no language'})" for b in blocks(page)
                    if not b.marked and b.lang not in RUNNABLE]
        assert not unmarked, f"{name(page)}: blocks neither runnable nor marked " \
                             f"'<!-- not run: why -->': {unmarked}"
    assert to_run(README, "python") and to_run(README, "bash")


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_linked_files_exist(page):
    text = page.read_text(encoding="utf-8")
    links = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)
             if "://" not in t and not t.startswith("#")}
    missing = sorted(t for t in links if not (page.parent / t).exists())
    assert not missing, f"{name(page)} links to files that are not there: {missing}"


def expected_prints(code: str) -> list[str]:
    """What each `print` line of `code` says, in its trailing comment, it prints."""
    expected = []
    for number, line in enumerate(code.splitlines(), 1):
        if line.lstrip().startswith("print("):
            assert "  # " in line, f"print without the output it gives: {line!r} ({number})"
            expected.append(line.rsplit("  # ", 1)[1].strip())
    return expected


def same_output(printed: str, promised: str) -> bool:
    """Equal words; equal integers; other numbers within 10 % (CPUs round differently)."""
    if NUMBER.sub("#", printed) != NUMBER.sub("#", promised):
        return False
    for a, b in zip(NUMBER.findall(printed), NUMBER.findall(promised), strict=True):
        exact = not any(c in a + b for c in ".eE")
        if (a != b) if exact else not math.isclose(float(a), float(b), rel_tol=0.1):
            return False
    return True


def scratch_env(tmp_path: Path) -> dict[str, str]:
    """This checkout's package first, data and run files in a scratch folder, one thread."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [
        str(ROOT), os.environ.get("PYTHONPATH")])), "RESNET_LAB_DATA": str(tmp_path / "data")}


@pytest.mark.parametrize("page", [p for p in PAGES if to_run(p, "python")], ids=name)
@pytest.mark.slow
def test_python_blocks_print_what_the_page_says(page, tmp_path):
    code = "\n\n".join(b.code for b in to_run(page, "python"))
    expected = expected_prints(code)
    assert expected
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=scratch_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.splitlines()
    assert len(printed) == len(expected), f"printed {printed}, {name(page)} says {expected}"
    wrong = [(p, e) for p, e in zip(printed, expected, strict=True) if not same_output(p, e)]
    assert not wrong, f"(printed, what {name(page)} says): {wrong}"


@pytest.mark.parametrize("block", [b for p in PAGES for b in to_run(p, "bash")],
                         ids=lambda b: f"line{b.line}")
@pytest.mark.slow
def test_bash_blocks_run(block, tmp_path):
    command = block.code.replace("\\\n", " ").replace(
        ".venv/bin/resnet-lab", f"{shlex.quote(sys.executable)} -m resnet_lab")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=tmp_path,
                          env=scratch_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for steps in re.findall(r"--steps (\d+)", command):
        assert f"finished {steps} steps" in done.stdout, done.stdout
    for saved in re.findall(r"--save (\S+)", command):
        assert (tmp_path / saved).stat().st_size > 0
