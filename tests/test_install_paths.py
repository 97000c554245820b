"""Each documented install serves the app's page: a plain `voila notebooks/app.ipynb` from the
clone's root, after `pip install -e .` (the usual developer install) or `pip install .` (a wheel,
as conda and Binder install the lab) into a fresh venv. (`python3 tasks.py app` is tested in
test_browser.py.)

The fresh venv gets this environment's other packages without downloading anything: a .pth file
puts this environment's site-packages on its path, and links bring in this environment's share/
and etc/ (Voilà's page templates, the widgets' JavaScript), less the files of the clone's own
share/, which only the install under test may put there. Chromium then checks the page as
test_browser.py does: the app's figures appear, with no page error and no request off the machine.
"""

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests import test_browser as browser

pytest.importorskip("setuptools", reason="pip builds the lab with this environment's setuptools")
playwright = browser.playwright                    # the fixture: one Playwright per module
ROOT = browser.ROOT
# each install: `pip install --no-deps` with these options, of the clone (a wheel is built from a
# copy of it: setuptools would leave build/ and *.egg-info/ in the clone)
INSTALLS = {"editable": ["-e"], "wheel": []}
NOT_BUILT_FROM = {".git", ".venv", "lab", "runs", "test-artifacts", "build", "resnet_lab.egg-info"}


def link_all_but(source: Path, target: Path, ours: Path) -> None:
    """Make `target` mirror `source` with symbolic links, less the files `ours` also holds."""
    for entry in source.iterdir():
        mine = ours / entry.name
        if not mine.exists():
            target.mkdir(parents=True, exist_ok=True)
            (target / entry.name).symlink_to(entry)
        elif entry.is_dir() and mine.is_dir():
            link_all_but(entry, target / entry.name, mine)


@pytest.fixture(scope="module", params=INSTALLS)
def fresh_python(request, tmp_path_factory) -> Path:
    """The python of a new venv where the lab was installed as INSTALLS[param] says, beside
    this environment's packages."""
    folder = tmp_path_factory.mktemp(request.param)
    venv.create(folder, symlinks=True)       # no pip of its own: this environment's is on its path
    python = folder / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "this_environment.pth").write_text(sysconfig.get_path("purelib") + "\n")
    link_all_but(Path(sys.prefix, "share"), folder / "share", ROOT / "share")
    if Path(sys.prefix, "etc").exists():
        (folder / "etc").symlink_to(Path(sys.prefix, "etc"))
    source = ROOT
    if request.param == "wheel":
        source = tmp_path_factory.mktemp("clone") / "resnet-lab"
        shutil.copytree(ROOT, source, symlinks=True,
                        ignore=lambda folder, names: NOT_BUILT_FROM if folder == str(ROOT) else ())
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    *INSTALLS[request.param], source], check=True)
    return python


def test_a_plain_voila_command_serves_the_app(fresh_python, playwright, request, tmp_path):
    """`voila notebooks/app.ipynb` in the clone's root, with the venv's Jupyter folders only."""
    port = browser.free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"JUPYTER_DATA_DIR": str(tmp_path / "data"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "run"), "JUPYTER_PATH": "",
           "JUPYTER_CONFIG_PATH": ""}
    voila = ["-m", "voila", "notebooks/app.ipynb", "--Voila.ip=127.0.0.1", f"--port={port}",
             "--no-browser"]
    with browser.server(voila, url + "api/status", env, python=str(fresh_python)):
        context = browser.new_context(playwright, tmp_path / "chromium")
        page = browser.load_app(context, url)
        name = request.node.callspec.id
        page.screenshot(path=str(browser.ARTIFACTS / f"app-plain-voila-{name}.png"))
        context.close()
    browser.assert_clean([page])
