"""The app in a real browser: `python3 tasks.py app` serves it with Voilà, Chromium clicks.

Every request that leaves the machine is blocked and recorded, and every page error is
collected from the first request on: a test fails on either. The tests of how fast a control
answers run with two busy processes beside them (`busy_cpu`), as on a student's busy laptop;
the others have the cores to themselves. Screenshots of each state go to
test-artifacts/. The server's whole process group (kernels included) is stopped at the end.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing: .ci/run installs it with apt-get", pytrace=False)
    pytest.skip("Chromium not installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(args: list[str], status_url: str, env: dict, python: str = sys.executable):
    """Run a server (`python` with `args`) in its own process group until `status_url` answers;
    stop the whole group (kernels included) afterwards."""
    process = subprocess.Popen([python, *args], cwd=ROOT, env={**os.environ, **env},
                               start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(status_url, timeout=2)   # noqa: S310
                break
            except urllib.error.HTTPError:
                break                  # it answered (a login redirect counts): the server is up
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{' '.join(args)} did not start") from None
                time.sleep(0.5)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture
def busy_cpu():
    """Two processes that keep both cores busy during one test: a control must still answer
    in time on a student's busy laptop."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield spinners
    for spinner in spinners:
        spinner.kill()
        spinner.wait(10)


def is_local(url: str) -> bool:
    return urllib.parse.urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}


def watch(context, page) -> None:
    """Abort and record (in `page.outside`) every request that leaves the machine; collect
    page errors (in `page.errors`). Call before the first request."""
    page.outside, page.errors = [], []

    def route(r):
        if is_local(r.request.url):
            r.continue_()
        else:
            page.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("pageerror", lambda e: page.errors.append(str(e)))


def new_context(playwright, folder, **viewport):
    return playwright.chromium.launch_persistent_context(
        str(folder), executable_path=CHROMIUM, headless=True, args=ARGS,
        viewport=viewport or {"width": 1200, "height": 1100})


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    # the README's command; a later --port overrides its default 8866
    with server(["tasks.py", "app", f"--port={port}"], url + "api/status",
                {"JUPYTER_RUNTIME_DIR": str(tmp_path_factory.mktemp("runtime"))}):
        yield url


@pytest.fixture(scope="module")
def playwright():
    """One Playwright per module: its sync API allows only one at a time in a thread."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        yield p


def load_app(context, url: str):
    """A new page of the app at `url`, watched from its first request, with both tabs drawn."""
    page = context.new_page()
    watch(context, page)
    page.goto(url, timeout=180_000)
    page.wait_for_selector(".profile-plot.js-plotly-plot", timeout=180_000)
    page.get_by_role("tab", name="Training lab").click()
    page.wait_for_selector(".lab-plot.js-plotly-plot", timeout=120_000)
    page.get_by_role("tab", name="Explorer").click()
    page.locator(".profile-plot.js-plotly-plot").wait_for(state="visible", timeout=30_000)
    return page


@pytest.fixture(scope="module")
def page(voila, playwright, tmp_path_factory):
    context = new_context(playwright, tmp_path_factory.mktemp("chromium"))
    yield load_app(context, voila)
    context.close()


def assert_clean(pages) -> None:
    """No page sent a request off the machine or logged an error."""
    outside = [url for p in pages for url in p.outside]
    errors = [error for p in pages for error in p.errors]
    assert outside == [] and errors == [], (outside, errors)


def test_the_app_loads_cleanly_three_times_in_a_row(voila, playwright, tmp_path, busy_cpu):
    """With the CPU busy, three fresh loads: no request off the machine (Voilà's page template
    links Font Awesome on a CDN; voila.json's policy has the browser refuse it), no page error
    (anywidget gives a plotly figure 2 s to load its widget code; one figure per tab keeps it
    in time)."""
    pages = []
    for i in range(3):
        context = new_context(playwright, tmp_path / f"chromium{i}")
        pages.append(load_app(context, voila))
        context.close()
    assert_clean(pages)


def test_a_plain_voila_command_serves_a_clean_page_too(playwright, tmp_path):
    """`voila notebooks/app.ipynb` from the clone's root reads voila.json: the same page."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    voila = ["-m", "voila", "notebooks/app.ipynb",
             "--Voila.ip=127.0.0.1", f"--port={port}", "--no-browser"]
    with server(voila, url + "api/status", {"JUPYTER_RUNTIME_DIR": str(tmp_path / "run")}):
        context = new_context(playwright, tmp_path / "chromium")
        page = load_app(context, url)            # after pip install -e . / .: test_install_paths
        page.screenshot(path=str(ARTIFACTS / "app-plain-voila.png"))
        context.close()
    assert_clean([page])


PROFILE_Y = "() => Array.from(document.querySelector('.profile-plot.js-plotly-plot').data[1].y)"


def wait_for_change(page, script, before, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        now = page.evaluate(script)
        if now != before:
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"{script} did not change within {timeout} s")


def test_page_renders_offline_without_errors(page):
    page.screenshot(path=str(ARTIFACTS / "app-explorer.png"))
    assert_clean([page])
    assert "healthy" in page.inner_text(".widget-html-content:has(.regime)")   # ResNet-56
    assert len(page.evaluate(PROFILE_Y)) == 56


def test_depth_slider_changes_the_plotted_profile(page, busy_cpu):
    before = page.evaluate(PROFILE_Y)
    page.locator(".widget-slider .noUi-handle").first.click()
    page.keyboard.press("ArrowLeft")                                      # 56 -> 50 layers
    after = wait_for_change(page, PROFILE_Y, before)
    assert len(after) == 50
    page.screenshot(path=str(ARTIFACTS / "app-depth-50.png"))


def test_skip_gate_and_stage_toggle_change_the_profile(page, busy_cpu):
    before = page.evaluate(PROFILE_Y)
    page.locator(".widget-slider .noUi-handle").nth(1).click()            # the skip gate
    page.keyboard.press("Home")                                           # 1 -> 0: plain
    plain = wait_for_change(page, PROFILE_Y, before)
    wait_for_readout(page, "exploding", len(plain))
    page.keyboard.press("End")                                            # 0 -> 1: a ResNet
    residual = wait_for_change(page, PROFILE_Y, plain)
    wait_for_readout(page, "healthy", len(residual))   # the figure and the line are two messages
    page.screenshot(path=str(ARTIFACTS / "app-residual.png"))
    before = residual
    page.get_by_text("stage 2 skips").click()
    after = wait_for_change(page, PROFILE_Y, before)
    assert len(after) == len(before) and after != before
    page.screenshot(path=str(ARTIFACTS / "app-stage2-toggled.png"))


PRESET_WORDS = [("deep sigmoid MLP (vanishing)", "vanishing", 22),
                ("plain-56 with BatchNorm (exploding)", "exploding", 56),
                ("ResNet-56", "healthy", 56),
                ("skip gate 0.5 over 27 blocks", "exploding", 56),
                ("pre-activation ResNet-110", "healthy", 110)]


def wait_for_readout(page, word, layers):
    page.wait_for_function(
        "([word, layers]) => { const r = document.querySelector('.regime');"
        " return r && r.innerText === word"
        " && r.parentElement.innerText.includes('(' + layers + ' layers'); }",
        arg=[word, layers], timeout=30_000)


@pytest.mark.parametrize("name,word,layers", PRESET_WORDS, ids=[p[0] for p in PRESET_WORDS])
def test_each_preset_sets_the_controls_and_names_the_regime(page, name, word, layers):
    page.get_by_role("button", name=name).click()
    wait_for_readout(page, word, layers)
    assert len(page.evaluate(PROFILE_Y)) == layers
    page.screenshot(path=str(ARTIFACTS / f"app-preset-{name.split(' (')[0].replace(' ', '-')}.png"))


def test_layout_holds_at_1280x800_and_1920_wide(page):
    """At 110 layers (the widest strip) nothing spills out sideways."""
    try:
        for width, height in ((1280, 800), (1920, 1080)):
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_function("w => window.innerWidth === w", arg=width)
            spill = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
            assert spill <= 0, f"{spill} px too wide at {width} px"
            page.screenshot(path=str(ARTIFACTS / f"app-{width}x{height}.png"))
    finally:
        page.set_viewport_size({"width": 1200, "height": 1100})


def test_a_click_on_a_block_cuts_its_skip_and_enter_restores_it(page, busy_cpu):
    page.get_by_role("button", name="ResNet-56").click()
    wait_for_readout(page, "healthy", 56)
    before = page.evaluate(PROFILE_Y)
    cell = page.locator(".strip-cell[title^='layer2.4 (']").first
    cell.click()
    cut = wait_for_change(page, PROFILE_Y, before)
    page.wait_for_function("() => document.querySelector(\".strip-cell[title^='layer2.4 (']\")"
                           ".innerText.includes('✂')", timeout=10_000)
    assert "strip-marked" in cell.get_attribute("class") and "skip cut" in cell.get_attribute(
        "title")
    page.screenshot(path=str(ARTIFACTS / "app-strip-block-cut.png"))
    cell.focus()                                         # the keyboard reaches every block
    page.keyboard.press("Enter")
    restored = wait_for_change(page, PROFILE_Y, cut)
    assert restored == before                            # exactly the profile from before
    assert "strip-marked" not in cell.get_attribute("class")


CURVE_LEN = "() => { const p = document.querySelector('.lab-plot.js-plotly-plot');" \
            " return p && p.data ? p.data[0].x.length : 0 }"


def test_train_grows_the_curves_and_stop_halts_them(page):
    page.get_by_role("tab", name="Training lab").click()
    page.locator(".widget-slider .noUi-handle >> visible=true").first.click()   # depth
    page.keyboard.press("Home")                                           # 56 -> 8 layers
    page.get_by_role("button", name="Train").click()
    first = wait_for_change(page, CURVE_LEN, 0, timeout=60)
    grown = wait_for_change(page, CURVE_LEN, first, timeout=30)
    assert grown > first > 0
    page.screenshot(path=str(ARTIFACTS / "app-training.png"))
    page.get_by_role("button", name="Stop").click()
    page.wait_for_function("() => document.body.innerText.includes('stopped')", timeout=30_000)
    stopped = page.evaluate(CURVE_LEN)
    page.wait_for_timeout(2000)            # a negative (no more steps) is seen only over time
    assert page.evaluate(CURVE_LEN) == stopped                            # no more steps
    heat = page.evaluate("() => document.querySelector('.lab-plot.js-plotly-plot').data"
                         ".find(t => t.type === 'heatmap').z.length")
    assert heat == 8                                                      # one row per layer
    page.screenshot(path=str(ARTIFACTS / "app-stopped.png"))
    assert page.errors == []


LESION = r"(\S+) without layer3.1: test error ([\d.]+)% \(intact: ([\d.]+)%\)"


def test_lesion_view_deleting_a_block_hurts_the_plain_net_more(page):
    sliders = page.locator(".widget-slider .noUi-handle >> visible=true")
    sliders.nth(0).click()
    page.keyboard.press("Home")
    for _ in range(2):
        page.keyboard.press("ArrowRight")                                 # 8 -> 14 -> 20 layers
    sliders.nth(1).click()
    page.keyboard.press("Home")
    for _ in range(4):
        page.keyboard.press("ArrowRight")                                 # 20 -> 100 steps
    page.get_by_role("button", name="Train").click()
    cells = page.locator(".strip-cell[title^='layer3.1 (']:enabled >> visible=true")
    cells.nth(1).wait_for(timeout=240_000)           # clickable once training has finished
    page.screenshot(path=str(ARTIFACTS / "app-trained-strips.png"))
    jumps = {}
    for i, name in enumerate(("plain-20", "ResNet-20")):
        cells.nth(i).click()
        page.wait_for_function("name => document.body.innerText.includes(name + ' without')",
                               arg=name, timeout=30_000)
        found = re.search(LESION, page.inner_text(".widget-html-content >> text=without"))
        assert found and found.group(1) == name
        jumps[name] = float(found.group(2)) - float(found.group(3))
        page.screenshot(path=str(ARTIFACTS / f"app-lesion-{name}.png"))
    assert jumps["plain-20"] > jumps["ResNet-20"] + 5, jumps      # percentage points
    assert "layer3.1" in page.inner_text(".lesion-table")
    assert page.errors == []


@pytest.fixture(scope="module")
def lessons(tmp_path_factory):
    """A copy of the lessons (running cells must not touch ours), where a test may add its
    own notebook."""
    folder = tmp_path_factory.mktemp("lab") / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder)
    return folder


@pytest.fixture(scope="module")
def jupyterlab(playwright, lessons):
    """`python3 tasks.py lab` (the README's command) on a copy of the lessons, with every cell
    attached to the page (windowing off), and a Chromium context; yields (URL pattern with
    its token, context)."""
    tmp = lessons.parent
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    port, token = free_port(), "resnet-lab-lessons"
    base = f"http://127.0.0.1:{port}"
    env = {"JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
           "RESNET_LAB_MODE": "quick"}
    with server(["tasks.py", "lab", "--no-browser", f"--port={port}",
                 f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={lessons}",
                 f"--LabApp.user_settings_dir={tmp / 'settings'}",
                 # the settings tasks.py installs (share/ copied into .venv), as they are here
                 f"--LabApp.app_settings_dir={ROOT / 'share' / 'jupyter' / 'lab' / 'settings'}"],
                f"{base}/api/status?token={token}", env):
        context = new_context(playwright, tmp / "chromium", width=1280, height=1000)
        yield f"{base}/lab/tree/{{}}?reset&token={token}", context
        context.close()


def open_lesson(jupyterlab, name: str):
    """A watched page with lesson `name` open in JupyterLab and its kernel idle."""
    url, context = jupyterlab
    page = context.new_page()
    watch(context, page)
    page.goto(url.format(name), timeout=120_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
    return page


def test_readme_lab_command_opens_a_lesson_cleanly(jupyterlab):
    """JupyterLab shows the rendered lesson; no news prompt, nothing asked off the machine."""
    page = open_lesson(jupyterlab, "01_vanishing_gradients.ipynb")
    page.locator(".jp-RenderedMarkdown h1", has_text="Lesson 1").first.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-lesson1.png"))
    assert page.get_by_text("Would you like to get notified about official").count() == 0
    page.close()
    assert_clean([page])


def run_cell(page, snippet: str):
    """Run the one code cell whose source holds `snippet`; return its output area."""
    cell = page.locator(".jp-CodeCell", has_text=snippet)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    return cell.locator(".jp-OutputArea")


def readout_changes(page, area, locator: str, act, timeout=60_000) -> tuple[str, str]:
    """The text of `locator` inside `area` before and after `act()`."""
    target = area.locator(locator).first
    target.wait_for(timeout=timeout)
    deadline = time.time() + timeout / 1000
    while not target.inner_text().strip():   # drawn: it reads something
        assert time.time() < deadline, f"{locator} stays blank"
        page.wait_for_timeout(100)
    before = target.inner_text()
    act()
    deadline = time.time() + timeout / 1000
    while time.time() < deadline:            # the locator finds the element anew each time:
        if target.inner_text() != before:    # widgets replace their HTML when they update
            return before, target.inner_text()
        page.wait_for_timeout(200)
    raise AssertionError(f"{locator} still reads {before!r}")


LESSON_CONTROLS = {
    "01_vanishing_gradients.ipynb": ('explorer.apply_preset("deep sigmoid MLP', ".regime",
                                     lambda page, area: area.get_by_role(
                                         "button", name="ResNet-56").click()),
    "02_residual_learning.ipynb": ("panel = TrainingLab(", ".widget-html-content >> nth=1",
                                   lambda page, area: area.get_by_role(
                                       "button", name="Train").click()),
    "03_resnet_architectures.ipynb": ("architecture = ArchitectureExplorer()",
                                      ".widget-html-content",
                                      lambda page, area: area.locator("select").select_option(
                                          "bottleneck")),
    "04_resnext.ipynb": ("cardinality = CardinalityExplorer()", ".widget-html-content",
                         lambda page, area: (area.locator(".noUi-handle").click(),
                                             page.keyboard.press("End"))),   # C 1 -> 32
}


# the cells a control needs first: the lab trains on lesson 2's data
NEEDS = {"02_residual_learning.ipynb": ('find_spec("resnet_lab")', "S = lessons.settings(MODE)",
                                        "images = lessons.degradation_data(S)")}


@pytest.mark.parametrize("name", LESSON_CONTROLS)
def test_each_lessons_live_control_answers_in_jupyterlab(jupyterlab, name, busy_cpu):
    snippet, readout, act = LESSON_CONTROLS[name]
    page = open_lesson(jupyterlab, name)
    for needed in NEEDS.get(name, ()):
        run_cell(page, needed)
    area = run_cell(page, snippet)
    try:
        before, after = readout_changes(page, area, readout, lambda: act(page, area))
    finally:
        page.screenshot(path=str(ARTIFACTS / f"lesson-control-{name.split('_')[0]}.png"))
    assert after != before
    if name.startswith("02"):
        area.get_by_role("button", name="Stop").click()
    page.close()
    assert_clean([page])


def cell_reads(page, name: str, text: str, timeout=30_000) -> None:
    """Wait until the strip cell of block `name` shows `text` (a blank reads "")."""
    page.wait_for_function(
        "([name, text]) => { const c = document.querySelector(`.strip-cell[title^='${name} (']`);"
        " return c !== null && c.innerText.trim() === text; }", arg=[name, text], timeout=timeout)


def cells_marked(page, mark: str, count: int, timeout=30_000) -> None:
    """Wait until exactly `count` strip cells show `mark`."""
    page.wait_for_function(
        "([mark, count]) => Array.from(document.querySelectorAll('.strip-cell'))"
        ".filter(c => c.innerText.includes(mark)).length === count",
        arg=[mark, count], timeout=timeout)


FITS = """area => {
    const inside = area.getBoundingClientRect();
    const cut = Array.from(area.querySelectorAll("button[title^='Set every control']"))
        .filter(b => b.scrollWidth > b.clientWidth).map(b => b.innerText);
    const plot = area.querySelector('.profile-plot .main-svg').getBoundingClientRect();
    return {cut, plotRight: plot.right, areaRight: inside.right};
}"""


def test_lesson_2s_explorer_at_1280x800_fits_and_its_first_click_cuts_a_skip(jupyterlab):
    """At 1280×800 no preset label is cut and the plot (every layer, the colour bar) lies
    inside the output area; the first click on a block cuts its skip (✂), the next restores
    it (the ✂ goes), and the gate at 0 then 1 marks every block and then none."""
    page = open_lesson(jupyterlab, "02_residual_learning.ipynb")
    page.set_viewport_size({"width": 1280, "height": 800})
    area = run_cell(page, "explorer = Explorer()")
    cell_reads(page, "layer2.4", "2.4", timeout=120_000)
    area.screenshot(path=str(ARTIFACTS / "lesson-02-explorer-1280x800.png"))
    fits = area.evaluate(FITS)
    assert fits["cut"] == [] and fits["plotRight"] <= fits["areaRight"] + 1, fits
    page.locator(".strip-cell[title^='layer2.4 (']").click()
    cell_reads(page, "layer2.4", "✂")
    page.locator(".strip-cell[title^='layer2.4 (']").click()
    cell_reads(page, "layer2.4", "2.4")
    area.locator(".widget-slider .noUi-handle").nth(1).click()          # the skip gate
    page.keyboard.press("Home")                                         # 1 -> 0: plain
    cells_marked(page, "✂", 27)
    page.keyboard.press("End")                                          # 0 -> 1: residual
    cells_marked(page, "✂", 0)
    page.close()
    assert_clean([page])


LESION_NOTEBOOK = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                              "execution_count": None, "source": [
    "import resnet_lab as rl\n", "from resnet_lab.training import data\n",
    "from resnet_lab.app import LesionView\n", "\n",
    "nets = {'plain-14': rl.plain_net(14, width=4, seed=0),\n",
    "        'ResNet-14': rl.cifar_resnet(14, width=4, seed=0)}\n",
    "lesion = LesionView(test_samples=64)\n", "lesion.prepare(nets)\n",
    "lesion.start(data.synthetic(64, 64, size=16, seed=0), {})\n", "lesion.widget"]}],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def test_the_lesion_views_cross_goes_when_a_block_is_put_back(jupyterlab, lessons):
    (lessons / "lesion-marks.ipynb").write_text(json.dumps(LESION_NOTEBOOK))
    page = open_lesson(jupyterlab, "lesion-marks.ipynb")
    run_cell(page, "lesion = LesionView(")
    cell_reads(page, "layer1.1", "1.1", timeout=120_000)
    cell = page.locator(".strip-cell[title^='layer1.1 (']").nth(1)      # ResNet-14's
    cell.click()
    page.wait_for_function("() => document.body.innerText.includes('without layer1.1')",
                           timeout=30_000)
    cells_marked(page, "✕", 1)
    cell.click()
    page.wait_for_function("() => document.body.innerText.includes('every block in place')",
                           timeout=30_000)
    cells_marked(page, "✕", 0)
    page.close()
    assert_clean([page])


def notebook(*sources: str) -> str:
    """A notebook of code cells, as JSON."""
    return json.dumps({"cells": [{"cell_type": "code", "metadata": {}, "outputs": [],
                                  "execution_count": None, "source": source}
                                 for source in sources],
                       "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                   "display_name": "Python 3 (ipykernel)"}},
                       "nbformat": 4, "nbformat_minor": 5})


def test_a_saved_lesson_reopens_with_its_widgets_after_the_kernel_is_gone(jupyterlab, lessons):
    """JupyterLab saves the widgets' state with the notebook (share/'s settings), so a lesson
    saved and reopened with a new kernel shows its widgets, not "model not found"."""
    path = lessons / "saved-widgets.ipynb"
    path.write_text(notebook("import ipywidgets as W\nW.IntSlider(value=3, description='kept')"))
    page = open_lesson(jupyterlab, path.name)
    run_cell(page, "W.IntSlider").locator(".widget-slider").wait_for(timeout=60_000)
    page.keyboard.press("Control+s")
    deadline = time.time() + 60
    while "widget-view" not in path.read_text():          # saved with the slider's output
        assert time.time() < deadline, "the notebook was not saved"
        page.wait_for_timeout(200)
    url = jupyterlab[0]
    base, token = url.split("/lab/")[0], url.split("token=")[1]
    for session in page.request.get(f"{base}/api/sessions?token={token}").json():
        page.request.delete(f"{base}/api/sessions/{session['id']}?token={token}")
    page.close()
    page = open_lesson(jupyterlab, path.name)
    page.wait_for_function("() => document.querySelector('.widget-slider') !== null || "
                           "document.body.innerText.includes('model not found')", timeout=60_000)
    assert "model not found" not in page.inner_text("body")
    assert "kept" in page.inner_text(".widget-slider")
    page.close()
    assert_clean([page])
