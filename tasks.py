"""The lab's two commands, needing nothing but Python 3.10+:

    python3 tasks.py lab     install into .venv (first time) and open the lessons in JupyterLab,
                             from lab/: your copies of notebooks/, made the first time
    python3 tasks.py test    install into .venv (first time) and run the whole test suite
                             (add --fast for the unit tier alone: no notebooks, browser,
                             installs or slow tests; about a minute)

and two more, for the widget app alone and for a GPU machine:

    python3 tasks.py app             serve the widget app with Voila
    python3 tasks.py gpu-check OUT   the one-shot GPU check (benchmarks/gpu_check.py; add
                                     --dry-run to try it on any machine)

Torch is installed first as $RESNET_LAB_TORCH (default "torch==2.13.0"), and only when the venv
has none: on a GPU machine set RESNET_LAB_TORCH=torch to get your platform's normal build.
Everything else is installed at the known-good versions of constraints.txt; set
RESNET_LAB_LATEST=1 to install the newest versions instead, to try them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".resnet-lab-installed"
CONSTRAINTS = ROOT / "constraints.txt"
# JupyterLab's settings (no news; widget state saved with a notebook, so a saved lesson reopens
# with its widgets): a wheel installs share/ (pyproject's data-files), an editable install does
# not, so install() does
SHARE = ROOT / "share"
# the lessons a student opens and changes: copies of notebooks/ (which the tests compare with
# what git holds), git-ignored, at the same depth so the lessons' ".." is still the clone
LAB = ROOT / "lab"


def run(*args: object) -> None:
    print("+", " ".join(map(str, args)), flush=True)
    subprocess.run([str(a) for a in args], check=True, cwd=ROOT)


def install() -> None:
    """Create .venv and install the package with its test extras at the versions of
    constraints.txt (the newest with RESNET_LAB_LATEST=1), again whenever pyproject.toml,
    constraints.txt or share/ changed."""
    if not PY.exists():
        venv.create(VENV, with_pip=True)
    sources = [ROOT / "pyproject.toml", CONSTRAINTS, *(p for p in SHARE.rglob("*") if p.is_file())]
    if STAMP.exists() and STAMP.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return
    has_torch = subprocess.run([str(PY), "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        run(PY, "-m", "pip", "install", os.environ.get("RESNET_LAB_TORCH", "torch==2.13.0"))
    pinned = [] if os.environ.get("RESNET_LAB_LATEST") else ["-c", CONSTRAINTS]
    run(PY, "-m", "pip", "install", *pinned, "-e", ".[test]")
    shutil.copytree(SHARE, VENV / "share", dirs_exist_ok=True)
    STAMP.touch()


def working_copies(folder: Path) -> None:
    """Copy into `folder` each notebook of notebooks/ that it lacks; a copy already there (a
    student's work) is kept as it is."""
    folder.mkdir(exist_ok=True)
    for lesson in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if not (folder / lesson.name).exists():
            shutil.copy2(lesson, folder / lesson.name)
    print(f"Your lessons are in {folder}; to get a fresh copy of one, delete it there and "
          "start the lab again.", flush=True)


def with_defaults(defaults: list[str], extra: list[str]) -> list[str]:
    """`defaults` less those whose option the user gave in `extra`, then `extra`."""
    given = {a.split("=")[0] for a in extra}
    return [d for d in defaults if d.split("=")[0] not in given] + extra


FAST = ["-m", "not slow and not browser and not install and not gpu", "tests"]


def fast_tier(extra: list[str]) -> list[str]:
    """`extra` with --fast replaced by the unit tier's selection (the tests/ folder, no
    notebooks, none marked slow, browser, install or gpu)."""
    return [*FAST, *(a for a in extra if a != "--fast")] if "--fast" in extra else extra


def main(argv: list[str]) -> int:
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    extra = argv[1:]
    commands = {
        # no news feed and no update check: JupyterLab asks nothing off the machine
        "lab": [BIN / "jupyter", "lab", *with_defaults(
            ["--ip=127.0.0.1", f"--ServerApp.root_dir={LAB}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", *as_root],
            extra)],
        # a preheated kernel has run the app before anyone visits: the page comes up at once;
        # voila.json (read from here, the clone's root) keeps the page on the machine
        "app": [BIN / "voila", "notebooks/app.ipynb", *with_defaults(
            ["--Voila.ip=127.0.0.1", "--port=8866", "--no-browser", "--preheat_kernel=True",
             "--VoilaConfiguration.default_pool_size=1"], extra)],
        "test": [PY, "-m", "pytest", *fast_tier(extra)],
        "gpu-check": [PY, ROOT / "benchmarks" / "gpu_check.py", *extra],
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python3 tasks.py {{{','.join(commands)}}} [extra arguments]",
              file=sys.stderr)
        return 2
    install()
    if argv[0] == "lab" and not any(a.startswith("--ServerApp.root_dir") for a in extra):
        working_copies(LAB)
    return run_to_the_end([str(a) for a in commands[argv[0]]])


def run_to_the_end(command: list[str]) -> int:
    """Run `command` until it exits. Ctrl-C reaches it (the terminal sends it to both), and it
    decides: JupyterLab asks "Shutdown this Jupyter server (y/[n])?", a second Ctrl-C or "y"
    stops it. Meanwhile this script only waits, with no traceback of its own: its Ctrl-C
    handler does nothing, from before the child starts (exec gives the child the default)."""
    signal.signal(signal.SIGINT, lambda *_: None)
    return subprocess.Popen(command, cwd=ROOT).wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
