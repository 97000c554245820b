"""The package stays a codebase to learn from: short functions, one home per rule."""

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "resnet_lab"
NOTEBOOKS = ROOT / "notebooks"
MAX_LINES = 40          # a function: one screen, one idea
MAX_MODULE_LINES = 400  # a module: one concept a reader can hold


def functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_is_longer_than_40_lines(path):
    long = [f"{name} (line {line}): {n} lines" for name, line, n in functions(path)
            if n > MAX_LINES]
    assert not long, f"split these into named steps: {long}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_400_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_MODULE_LINES, f"{path.name} has {n} lines: split it by concept"


def test_the_argument_checks_and_depth_rules_have_one_home():
    for path in PACKAGE.rglob("*.py"):
        if path.name == "checks.py":
            continue
        tree = ast.parse(path.read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"check_choice", "check_count", "check_skip", "depth_rule",
                              "blocks_per_stage"}, path.name
        assert not DEPTH_ARITHMETIC.search(path.read_text()), \
            f"{path.name} does the depth arithmetic"


# (depth - 2) % 6, (d-2)//9, ... : the 6n+2 / 9n+2 rule worked out anywhere but checks.py
DEPTH_ARITHMETIC = re.compile(r"-\s*2\s*\)\s*(?:%|//)\s*[69]\b")


def test_the_depth_rule_check_catches_every_spelling():
    for text in ("(depth - 2) % 6", "(d-2)//9", "(self.depth - 2 ) // 6", "(n - 2) %6"):
        assert DEPTH_ARITHMETIC.search(text), text
    assert not DEPTH_ARITHMETIC.search("(x - 2) % 4")


GLOBAL_RESEED = re.compile(r"torch\.(?:random\.|cuda\.)?manual_seed\(|\bseed_all\(|"
                           r"set_rng_state\(|fork_rng\(")


def test_nothing_in_the_package_touches_the_global_generator():
    """Random state is explicit: seeded builds draw from a `torch.Generator` of their own, so
    no module reseeds, forks or restores torch's global generator."""
    offenders = [f"{path.name}:{n}: {line.strip()}" for path in sorted(PACKAGE.rglob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if GLOBAL_RESEED.search(line)]
    assert offenders == []


def test_no_lesson_reseeds_the_global_generator():
    """Lessons pass `seed=` to the builders and a `torch.Generator` to the draws instead of
    calling `torch.manual_seed`, which would change the reader's own random state."""
    offenders = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and GLOBAL_RESEED.search(source):
                offenders.append(f"{path.name} cell {i}")
    assert offenders == []


def test_the_checks_catch_a_reseed():
    assert GLOBAL_RESEED.search("torch.manual_seed(0)")
    assert GLOBAL_RESEED.search("    torch.random.manual_seed(seed)")
    assert not GLOBAL_RESEED.search("g = torch.Generator().manual_seed(0)")
