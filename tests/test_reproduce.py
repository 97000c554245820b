"""`resnet-lab reproduce`: the grid in this process and on Ray, resumed after Ctrl-C, failures
reported, and the report with its table and figure (a tiny grid: depths 8 and 14, one seed,
30 steps, synthetic 8x8 images, one thread per run so that every path gives the same numbers)."""

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resnet_lab.grid import cluster, control, findings, report, reproduce
from resnet_lab.grid.runs import Grid
from resnet_lab.nets.paper import HE2015_TABLE6

ROOT = Path(__file__).resolve().parent.parent

GRID = Grid(depths=(8, 14), seeds=1, steps=30, dataset="synthetic", size=8, n_train=2048,
            width=4)
CLI = [sys.executable, "-m", "resnet_lab", "reproduce", "--dataset", "synthetic", "--size", "8",
       "--n-train", "2048", "--depths", "8", "14", "--seeds", "1", "--steps", "30", "--width",
       "4", "--threads", "1", "--quiet"]


def histories(folder):
    """Every finished run's result, without its wall time (the one thing that may differ)."""
    out = {}
    for path in sorted((folder / "runs").glob("*.json")):
        result = json.loads(path.read_text())
        result["history"].pop("seconds")
        result.pop("resumed_at")
        out[path.name] = result
    return out


def table_and_findings(folder):
    text = (folder / "report.md").read_text()
    return [line for line in text.splitlines() if line.startswith(("|", "- Degradation",
                                                                    "- Residual"))]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid")
    reproduce.reproduce(GRID, folder, threads=1, quiet=True)
    return folder


@pytest.mark.slow
def test_the_grid_trains_every_run_and_writes_the_report(uninterrupted):
    assert sorted(histories(uninterrupted)) == ["ResNet-14-seed0.json", "ResNet-8-seed0.json",
                                                "plain-14-seed0.json", "plain-8-seed0.json"]
    result = json.loads((uninterrupted / "runs" / "plain-14-seed0.json").read_text())
    h = result["history"]
    assert h["status"] == "finished" and h["step"] == list(range(1, 31))
    assert h["setup"]["plain"] and h["setup"]["recipe"]["name"] == "he2015"
    assert h["test_step"] == [3 * i for i in range(1, 11)]     # every steps // 10
    # the plain and residual net of a depth start from the same weights on the same batches
    resnet = json.loads((uninterrupted / "runs" / "ResNet-14-seed0.json").read_text())
    assert resnet["history"]["setup"]["seed"] == h["setup"]["seed"] == 0
    assert resnet["history"]["train_loss"][0] != h["train_loss"][0]       # skips matter
    text = (uninterrupted / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 8 ") or
            line.startswith("| 14 ")]
    assert len(rows) == 2 and all(line.count("|") == 7 for line in rows)
    assert "He et al. ResNet test error % (CIFAR-10, quoted)" in text
    assert "Quoted: He et al. 2015, Table 6: CIFAR-10 test error" in text
    assert "Measured: synthetic (8×8 images, 2,048 training images), width 4, 30 steps" in text
    assert "on cpu with 1 thread(s) per run" in text
    assert "- Degradation: plain-14's training error" in text
    assert "- Residual learning: at 14 layers" in text
    assert (uninterrupted / "figure6.png").stat().st_size > 10_000
    page = (uninterrupted / "report.html").read_text()
    assert page.count("<tr>") == 3 and "figure6.png" in page and "CIFAR-10, quoted" in page


def shown(folder, capsys) -> str:
    report.show(folder)
    return capsys.readouterr().out


@pytest.mark.slow
def test_a_report_without_its_runs_shows_what_it_said_with_them(uninterrupted, tmp_path, capsys):
    """A clone has the report, not the runs (runs/ is git-ignored): `show` reads report.json."""
    for name in ("grid.json", "calls.json", "figure6.png", "report.json"):
        shutil.copy(uninterrupted / name, tmp_path / name)
    assert shown(tmp_path, capsys) == shown(uninterrupted, capsys)


def test_the_committed_figure6_report_shows_its_numbers_in_a_clone(capsys):
    """What lesson 2 prints from docs/figure6 in a fresh clone: the table, not "0 of 18"."""
    folder = ROOT / "docs" / "figure6"
    saved = report.Contents(**json.loads((folder / "report.json").read_text()))
    assert report.to_markdown(saved) == (folder / "report.md").read_text()   # one report
    text = shown(folder, capsys)
    assert text.startswith("All runs finished.") and "Degradation: plain-110" in text
    assert all(" ".join(row) in " ".join(text.split()) for row in saved.rows)


def test_the_report_quotes_table_6_with_its_depths():
    assert HE2015_TABLE6 == {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43}
    grid = Grid(depths=(20, 110), seeds=1, steps=10, dataset="synthetic")
    assert [c.name for c in grid.runs()] == ["ResNet-110", "ResNet-20", "plain-20"]


def test_the_report_says_whether_the_deepest_resnet_was_still_falling_at_the_end():
    """From the curves: the gap between the deepest and the shallowest ResNet, and a
    ResNet-110 whose error still falls over the last fifth on every seed has not converged;
    two flat curves give the order this budget gives, and no more."""
    def net(depth, slope):
        runs = findings.NetRuns("ResNet", depth)
        for seed in (0, 1):
            errors = [0.3 - slope * step / 1000 + 0.001 * seed for step in range(1000)]
            runs.histories.append({"train_error": errors,
                                   "setup": {"batch_size": 100, "depth": depth}})
            runs.train.append(100 * errors[-1])
        return runs

    nets = {("ResNet", 20): net(20, 0.0), ("ResNet", 110): net(110, 0.1)}
    (falling,) = findings.resnets_at_the_end(nets)
    assert "rose (+) or fell (-) by: ResNet-20 +0.00 points" in falling
    assert falling.startswith("ResNet-110 minus ResNet-20, training error: -4.75 points at "
                              "half the steps, -9.75 at the end.")   # steps 450-499, 950-999
    assert "Still falling on every seed: ResNet-110; the budget ended while" in falling
    last = sum(nets[("ResNet", 110)].histories[0]["train_error"][-50:]) / 50   # its last 5%
    noise = 100 * math.sqrt(2 * last * (1 - last) / (50 * 100))
    assert f"two windows of 5,000 training images each differ by chance by about ±{noise:.2f}" \
        in falling
    (flat,) = findings.resnets_at_the_end({("ResNet", 20): net(20, 0.0),
                                        ("ResNet", 110): net(110, 0.0)})
    assert "None still fell on every seed: at the smallest rate the curves have flattened" \
        in flat and "this run cannot say" in flat
    plain = findings.NetRuns("plain", 110, histories=[{"train_error": [0.9] * 500 + [0.4] * 500}])
    (halves,) = findings.at_half_and_end({**nets, ("plain", 110): plain})
    assert halves.endswith("the end: plain-110 90.00% -> 40.00%; ResNet-20 30.05% -> 30.05%; "
                           "ResNet-110 25.30% -> 20.30%.")


def test_the_report_says_how_the_runs_tested_and_warmed_up():
    """From the runs' own records: how BatchNorm was evaluated, and how many steps each
    warmed-up net trained at the lower learning rate, or that it never left the warm-up (a
    run without the record says nothing)."""
    def net(kind, depth, lrs):
        runs = findings.NetRuns(kind, depth)
        setup = {"eval_bn": "precise BatchNorm", "recipe": {"lr": 0.1, "warmup_error": 0.8}}
        runs.histories = [{"lr": lrs, "setup": setup} for _ in range(2)]
        return runs

    schedule = [0.1] * 5 + [0.01] * 3      # the scheduled rate after warm-up, then a drop
    notes = findings.how_trained({("ResNet", 20): net("ResNet", 20, schedule),
                                ("ResNet", 110): net("ResNet", 110, [0.01] * 4 + schedule),
                                ("plain", 110): net("plain", 110, [0.01] * 12)})
    assert notes == ["BatchNorm at evaluation, as the runs record it: precise BatchNorm.",
                     "Warm-up (a tenth of the learning rate until the training error is under "
                     "80%): ResNet-110 for its first 4 steps (every seed); "
                     "plain-110 never left it (its training error never fell under 80%, so "
                     "it trained at the lower rate for all 12 steps, every seed); the "
                     "other nets had none."]
    assert findings.how_trained({("ResNet", 20): findings.NetRuns("ResNet", 20)}) == []
    older = net("ResNet", 20, schedule)          # a run whose lab version worded it otherwise
    older.histories = [{**h, "setup": {**h["setup"], "eval_bn": "precise BN"}}
                       for h in older.histories]
    assert findings.how_trained({("ResNet", 20): older, ("plain", 20): net("plain", 20, schedule)}
                              )[0] == ("BatchNorm at evaluation, as the runs record it: precise "
                                       "BatchNorm (plain-20); precise BN (ResNet-20).")


def test_a_twin_line_gives_the_warm_up_rules_outcome_per_net():
    """The pair of a depth shares the warm-up rule, not its outcome: each net's own steps at
    the lower rate are printed beside what changed."""
    def net(kind, skip, lrs):
        setup = {"skip": skip, "recipe": {"lr": 0.1, "warmup_error": 0.8}}
        return findings.NetRuns(kind, 110, histories=[{"lr": lrs, "setup": setup}])

    (line,) = findings.twins_changed({("ResNet", 110): net("ResNet", 1.0, [0.01] * 2 + [0.1] * 8),
                                      ("plain", 110): net("plain", 0.0, [0.01] * 7 + [0.1] * 3)})
    assert line.startswith("ResNet-110 vs plain-110, their first seeds: changed:  skip (1 → 0)")
    assert line.endswith("the warm-up rule's outcome (steps at a tenth of the rate): "
                         "ResNet-110 2, plain-110 7")


@pytest.mark.slow
def test_ray_gives_the_same_histories(uninterrupted, tmp_path):
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        reproduce.reproduce(GRID, tmp_path, ray=True, cpus_per_run=1, quiet=True)
    finally:
        ray.shutdown()
    assert histories(tmp_path) == histories(uninterrupted)
    assert table_and_findings(tmp_path) == table_and_findings(uninterrupted)
    assert json.loads((tmp_path / "calls.json").read_text())[0]["ray"] is True


def wait_for(path, process, timeout=120):
    start = time.monotonic()
    while not path.exists():
        assert process.poll() is None, "the grid ended before it could be interrupted"
        assert time.monotonic() - start < timeout
        time.sleep(0.002)


@pytest.mark.slow
def test_ctrl_c_then_the_same_command_gives_the_same_report(uninterrupted, tmp_path):
    # a checkpoint at nearly every step; Ctrl-C while the second run trains
    command = [*CLI, "--out", str(tmp_path), "--checkpoint-minutes", "0.0001"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    wait_for(tmp_path / "runs" / "ResNet-14-seed0.json", process)
    wait_for(tmp_path / "checkpoints" / "plain-14-seed0.pt", process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err and "same command again" in err
    assert len(histories(tmp_path)) < 4                       # it really stopped part-way
    assert "runs finished; the same command again goes on" in \
        (tmp_path / "report.md").read_text()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert histories(tmp_path) == histories(uninterrupted)
    assert table_and_findings(tmp_path) == table_and_findings(uninterrupted)
    resumed = [json.loads(p.read_text())["resumed_at"] for p in (tmp_path / "runs").glob("*")]
    assert max(resumed) > 0                                  # one run went on from its checkpoint
    assert not list((tmp_path / "checkpoints").glob("*.pt"))
    assert len(json.loads((tmp_path / "calls.json").read_text())) == 2


@pytest.mark.slow
def test_a_run_that_raises_is_reported_and_the_others_are_kept(uninterrupted, tmp_path,
                                                                monkeypatch):
    shutil.copy(uninterrupted / "grid.json", tmp_path)
    (tmp_path / "runs").mkdir()
    for kept in ("ResNet-14-seed0.json", "ResNet-8-seed0.json"):
        shutil.copy(uninterrupted / "runs" / kept, tmp_path / "runs")
    calls, real = [], reproduce.train_one

    def flaky(grid, cell, **options):
        calls.append(cell.file)
        if cell.name == "plain-14":
            raise RuntimeError("out of memory (a test)")
        return real(grid, cell, **options)

    monkeypatch.setattr(reproduce, "train_one", flaky)
    reproduce.reproduce(GRID, tmp_path, threads=1, quiet=True)
    assert calls == ["plain-14-seed0", "plain-14-seed0", "plain-8-seed0"]   # tried twice
    assert sorted(histories(tmp_path)) == ["ResNet-14-seed0.json", "ResNet-8-seed0.json",
                                           "plain-8-seed0.json"]
    failure = json.loads((tmp_path / "failed" / "plain-14-seed0.json").read_text())
    assert "RuntimeError: out of memory (a test)" in failure["error"]
    text = (tmp_path / "report.md").read_text()
    assert "3 of 4 runs finished" in text
    assert "- plain-14-seed0: RuntimeError: out of memory (a test)" in text
    assert "| 14 | – | – |" in text                   # the failed cell is empty, not invented


@pytest.mark.slow
def test_bad_grids_and_folders_are_refused_with_a_clear_error(tmp_path, uninterrupted):
    with pytest.raises(ValueError, match=r"depths has 9, which is not allowed; 6n\+2"):
        Grid(depths=(9,))
    with pytest.raises(ValueError, match="dataset='imagenet' is not allowed"):
        Grid(dataset="imagenet")
    with pytest.raises(ValueError, match="seeds=0 is not allowed"):
        Grid(seeds=0)
    other = Grid(depths=(8,), seeds=1, steps=5, dataset="synthetic")
    with pytest.raises(ValueError, match="holds another grid"):
        reproduce.reproduce(other, uninterrupted, quiet=True)


@pytest.mark.slow
def test_a_grown_grid_trains_only_its_new_runs(uninterrupted, tmp_path):
    """ResNets first, plain nets added later (docs/figure6 was made so): the new call trains
    the new runs alone, and the old ones stay as they were."""
    folder = tmp_path / "grown"
    shutil.copytree(uninterrupted, folder)
    before = histories(folder)
    grown = Grid(**{**GRID.to_dict(), "depths": (8, 14), "plain_depths": (8, 14, 20)})
    reproduce.reproduce(grown, folder, threads=1, quiet=True)
    after = histories(folder)
    assert set(after) == {*before, "plain-20-seed0.json"}
    assert all(after[name] == before[name] for name in before)
    assert json.loads((folder / "calls.json").read_text())[-1]["runs"] == 1
    assert "| 20 |" in (folder / "report.md").read_text()


def test_a_grid_grows_by_depths_or_seeds_and_nothing_else():
    saved = Grid(depths=(20, 56), plain_depths=(), seeds=2, steps=50, dataset="synthetic")
    assert saved.grows(saved)
    assert Grid(depths=(20, 56), plain_depths=(20, 110), seeds=2, steps=50,
                dataset="synthetic").grows(saved)
    assert Grid(depths=(20, 56, 110), plain_depths=(), seeds=3, steps=50,
                dataset="synthetic").grows(saved)
    for changed in (dict(depths=(20,)), dict(seeds=1), dict(steps=60), dict(width=8)):
        fields = dict(depths=(20, 56), plain_depths=(), seeds=2, steps=50, dataset="synthetic")
        assert not Grid(**{**fields, **changed}).grows(saved), changed


def test_without_ray_the_ray_path_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RuntimeError, match=r'pip install "resnet-lab\[cluster\]"'):
        cluster.connect("auto")


def test_every_subcommand_takes_dataset(capsys):
    from resnet_lab import cli

    parser = cli.build_parser()
    for command in (["train"], ["compare"], ["reproduce", "--out", "x"]):
        assert parser.parse_args([*command, "--dataset", "synthetic"]).dataset == "synthetic"
    assert capsys.readouterr().err == ""


def test_the_report_says_which_calls_ran_on_ray():
    assert report.on_ray([{"ray": False}]) == ""
    assert report.on_ray([{"ray": True}, {"ray": True}]) == " (Ray)"
    assert report.on_ray([{"ray": False}, {"ray": True}]) == " (1 of 2 on Ray)"


@pytest.mark.slow
def test_the_report_says_what_changed_between_twins_and_each_seeds_errors(uninterrupted):
    """The pair of each depth differs in the skip alone, read from the runs' own setups, and
    a ± over seeds can be read back from each seed's numbers."""
    text = (uninterrupted / "report.md").read_text()
    for depth in (8, 14):
        line = next(x for x in text.splitlines() if f"ResNet-{depth} vs plain-{depth}" in x)
        assert "changed:  skip (1 → 0) / the same:" in line and "tensors start equal" in line
    nets = findings.runs_by_net(report.load(uninterrupted)[1])
    first = nets["plain", 8]
    assert f"plain-8 {first.train[0]:.2f} / {first.test[0]:.2f};" in text


@pytest.mark.slow
def test_a_control_run_repeats_a_grid_run_with_one_change_the_learning_rate(uninterrupted,
                                                                             tmp_path):
    """The control trains the grid's plain-8 again at a tenth of the rate: the same weights,
    batches and data; its file says what changed (the lr schedule alone) and both runs'
    errors, the grid run's read from its own history."""
    folder = tmp_path / "grid"
    shutil.copytree(uninterrupted, folder)
    path = control.train_control(folder, "plain-8", seed=0, lr=0.01, threads=1)
    assert path.name == "control-plain-8-seed0-lr0.01.json"
    grid_line, control_line, changed = control.control_lines(path)
    twin = json.loads((folder / "runs" / "plain-8-seed0.json").read_text())["history"]
    assert grid_line.startswith(f"plain-8 (the grid's run): training error "
                                f"{findings.error_before(twin, 0.5):.2f}% at half the steps")
    assert control_line.startswith("the control: training error ") and control_line != grid_line
    assert "changed:  lr schedule (" in changed and "lr 0.1 → " in changed.split("\n")[1]
    assert "tensors start equal" in changed and "skip" not in changed.split("\n")[1]
    with pytest.raises(ValueError, match="run='plain-9' with seed=0 is not a run of the grid"):
        control.train_control(folder, "plain-9", seed=0, lr=0.01)


@pytest.mark.slow
def test_a_pair_control_trains_both_twins_with_one_fixed_warm_up(uninterrupted, tmp_path):
    """The pair of one depth trained again, both under one recipe with a fixed warm-up: the
    skip is the one change, in two processes as in one; a depth the grid lacks is refused."""
    folder = tmp_path / "grid"
    shutil.copytree(uninterrupted, folder)
    path = control.train_pair(folder, 8, seed=0, warmup=2, threads=1, workers=2)
    assert path.name == "control-8-seed0-warmup2.json"
    resnet, plain, changed = control.control_lines(path)
    assert resnet.startswith("ResNet-8: training error ") and plain.startswith("plain-8: ")
    assert changed.split("\n")[1].strip() == "changed:  skip (1 → 0)"
    assert "lr schedule (he2015 (warm-up 2 steps): steps ÷10, lr 0.1)" in changed
    saved = json.loads(path.read_text())["runs"]
    twin = json.loads((folder / "runs" / "plain-8-seed0.json").read_text())["history"]
    assert saved["plain-8"]["train_error_end"] == round(findings.error_before(twin, 1.0), 2)
    with pytest.raises(ValueError, match="run='ResNet-9' with seed=0 is not a run of the grid"):
        control.train_pair(folder, 9, seed=0, warmup=2)
