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


def pinned() -> dict[str, str]:
    """constraints.txt: package -> version."""
    lines = (line.strip() for line in (ROOT / "constraints.txt").read_text().splitlines())
    return dict(_split(line.replace("==", " ")) for line in lines
                if line and not line.startswith("#"))


def test_environment_yml_pins_the_packages_of_pyproject_at_the_known_good_versions():
    """The conda/Binder environment has pyproject.toml's packages, each at the version of
    constraints.txt (pytorch at pyproject's range), and that version is in pyproject's range."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+; only this test needs it
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    wanted = {CONDA_NAMES.get(k, k): v for k, v in map(_split, requirements)}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    got = dict(_split(req) for dep in env["dependencies"]
               for req in (dep["pip"] if isinstance(dep, dict) else [dep]))
    assert got.pop("python") == project["requires-python"]
    got.pop("pip")
    assert got.keys() == wanted.keys()
    assert got.pop("pytorch") == wanted.pop("pytorch")
    versions = pinned()
    for name, spec in got.items():
        assert spec == f"=={versions[name]}", name
        assert versions[name] in SpecifierSet(wanted[name]), (name, versions[name], wanted[name])


def test_constraints_leave_torch_to_the_user():
    """torch (and what only torch needs) is not pinned: $RESNET_LAB_TORCH picks the build."""
    assert not {"torch", "sympy", "networkx", "mpmath"} & pinned().keys()


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tasks_py_rejects_an_unknown_command():
    result = subprocess.run([sys.executable, "tasks.py", "serve"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "lab,app,test" in result.stderr


def test_every_subpackage_ships_in_the_wheel():
    """setuptools' `packages` lists packages one by one: a new subpackage left out would be
    missing from the wheel (and from Binder, which installs one)."""
    tomllib = pytest.importorskip("tomllib")
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = [".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "resnet_lab").rglob("__init__.py")]
    assert sorted(listed) == sorted(found)


def test_tasks_py_lab_serves_copies_of_the_lessons_and_keeps_a_students_work(
        tmp_path, monkeypatch, capsys):
    """`tasks.py lab` opens lab/, copies of notebooks/ (which the committed-form test reads), so
    the two commands work in either order; a copy already there is never overwritten, and
    extra arguments such as --port pass through to JupyterLab."""
    sys.path.insert(0, str(ROOT))
    import tasks
    served = []
    monkeypatch.setattr(tasks, "LAB", tmp_path / "lab")
    monkeypatch.setattr(tasks, "install", lambda: None)
    monkeypatch.setattr(tasks, "run_to_the_end", lambda args: served.append(args) or 0)
    committed = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert tasks.main(["lab", "--port=9999"]) == 0
    assert f"--ServerApp.root_dir={tmp_path / 'lab'}" in served[0]
    assert "--port=9999" in served[0]
    assert str(tmp_path / "lab") in capsys.readouterr().out
    copies = [tmp_path / "lab" / p.name for p in committed]
    assert [c.read_bytes() for c in copies] == [p.read_bytes() for p in committed]
    copies[0].write_text("a student's work")
    copies[1].unlink()
    tasks.main(["lab"])
    assert copies[0].read_text() == "a student's work"
    assert copies[1].read_bytes() == committed[1].read_bytes()


CHILD = """import signal, sys, time
asked = []
def on_interrupt(*_):
    asked.append(1)
    print("asked", flush=True)
    if len(asked) == 2:
        sys.exit(3)
signal.signal(signal.SIGINT, on_interrupt)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def test_ctrl_c_reaches_the_lab_and_tasks_py_waits_for_it_without_a_traceback():
    """As in a terminal, Ctrl-C goes to the whole process group: the child (JupyterLab in
    real life) decides when to stop, and tasks.py returns its exit code quietly."""
    import os
    import signal

    driver = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import tasks; "
              f"sys.exit(tasks.run_to_the_end([sys.executable, '-c', {CHILD!r}]))")
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    for _ in range(2):
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.stdout.readline().strip() == "asked"
    assert proc.wait(timeout=20) == 3
    assert "Traceback" not in proc.stderr.read()
