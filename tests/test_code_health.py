"""The package stays a codebase to learn from: short functions, one home per rule."""

import ast
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "resnet_lab"
MAX_LINES = 60


def functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_function_is_longer_than_60_lines(path):
    long = [f"{name} (line {line}): {n} lines" for name, line, n in functions(path)
            if n > MAX_LINES]
    assert not long, f"split these into named steps: {long}"


def test_the_argument_checks_and_depth_rules_have_one_home():
    for path in PACKAGE.glob("*.py"):
        if path.name == "checks.py":
            continue
        tree = ast.parse(path.read_text())
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert not defined & {"check_choice", "check_count", "check_skip", "depth_rule",
                              "blocks_per_stage"}, path.name
        assert "- 2) %" not in path.read_text(), f"{path.name} does the depth arithmetic"


def test_no_module_reseeds_the_global_generator_except_the_seeded_builder():
    """Random state is explicit: `torch.manual_seed` appears once, inside `models.seeded`,
    which restores the caller's state (`fork_rng`)."""
    hits = subprocess.run(["grep", "-rn", "manual_seed(", str(PACKAGE)], capture_output=True,
                          text=True).stdout.splitlines()
    offenders = [h for h in hits if "Generator" not in h and "models.py" not in h]
    assert offenders == []
