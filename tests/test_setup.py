"""The project's setup: environment.yml mirrors pyproject.toml, ruff is clean, tasks.py works."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; only this test needs it
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    wanted = dict(_split(r) for r in requirements)
    wanted = {CONDA_NAMES.get(k, k): v for k, v in wanted.items()}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    got = {}
    for dep in env["dependencies"]:
        for req in (dep["pip"] if isinstance(dep, dict) else [dep]):
            name, spec = _split(req)
            got[name] = spec
    python_spec = got.pop("python")
    got.pop("pip")
    assert got == wanted
    assert python_spec == project["requires-python"]


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tasks_py_rejects_an_unknown_command():
    result = subprocess.run([sys.executable, "tasks.py", "serve"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "lab,app,test" in result.stderr
