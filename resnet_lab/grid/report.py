"""The report of a reproduced grid, beside He et al. 2015's Figure 6 and Table 6.

`write_report(folder)` reads a `reproduce` output folder alone (grid.json, runs/, failed/,
calls.json) and writes there:
- `figure6.png`: plain nets on the left, ResNets on the right, as in He et al.'s Fig. 6; thin
  lines training error, bold lines test error; the mean over seeds with a band from the lowest
  to the highest seed;
- `report.md` and `report.html` (the same content): what ran where, the table of final training
  and test error per depth (mean ± std over seeds) beside He et al.'s Table 6, what the
  measurement shows, and every run that failed with its error;
- `report.json`: the same content as data, which `show` reads where runs/ is not (a clone of
  the repository: the runs stay on the machine that trained them; the report is committed).
"""

from __future__ import annotations

import html
import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from ..nets.paper import HE2015_FIG6_PLAIN, HE2015_TABLE6, HE2015_TABLE6_SOURCE
from ..training.history import running_mean
from .runs import Grid


@dataclass
class NetRuns:
    """The finished runs of one net of the grid, a (kind, depth) such as plain-56: their
    final errors in %, one per seed, and their histories."""

    kind: str
    depth: int
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    histories: list[dict] = field(default_factory=list)


def final_train_error(history: dict) -> float:
    """Training error (%) at the end: the mean batch error of the last 5% of the steps."""
    return error_before(history, 1.0)


def load(folder: Path) -> tuple[Grid, list[dict], list[dict], list[dict]]:
    """The grid, its finished runs, its failures and the calls that ran it."""
    grid = Grid.from_dict(json.loads((folder / "grid.json").read_text()))
    read = lambda kind: [json.loads(p.read_text()) for p in sorted((folder / kind).glob("*.json"))]
    calls = folder / "calls.json"
    return grid, read("runs"), read("failed"), json.loads(calls.read_text()) if calls.exists() \
        else []


def runs_by_net(results: list[dict]) -> dict[tuple[str, int], NetRuns]:
    """Results grouped by (kind, depth), seeds in order."""
    nets: dict[tuple[str, int], NetRuns] = {}
    for r in sorted(results, key=lambda r: (r["kind"], r["depth"], r["seed"])):
        net = nets.setdefault((r["kind"], r["depth"]), NetRuns(r["kind"], r["depth"]))
        h = r["history"]
        net.histories.append(h)
        net.train.append(final_train_error(h))
        net.test.append(100 * h["test_error"][-1] if h["test_error"] else math.nan)
    return nets


def mean_std(values: list[float]) -> str:
    """"7.51 ± 0.20" over seeds ("7.51" for one seed, "–" for none)."""
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(grid: Grid, nets: dict[tuple[str, int], NetRuns]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per depth, the plain and the residual net's final errors (%, measured)
    and He et al.'s Table 6 (quoted)."""
    header = ["depth", "plain: train error %", "plain: test error %", "ResNet: train error %",
              "ResNet: test error %", "He et al. ResNet test error % (CIFAR-10, quoted)"]
    rows = []
    for depth in sorted({*grid.depths, *grid.plain_depths}):
        plain, res = nets.get(("plain", depth)), nets.get(("ResNet", depth))
        rows.append([str(depth), *(mean_std(getattr(c, k)) if c else "–"
                                   for c in (plain, res) for k in ("train", "test")),
                     f"{HE2015_TABLE6[depth]:.2f}" if depth in HE2015_TABLE6 else "–"])
    return header, rows


def findings(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """What the measurement shows, against He et al.'s two claims (said either way)."""
    mean = lambda c, k: statistics.mean(getattr(c, k))
    out = []
    plains = sorted(d for k, d in nets if k == "plain")
    if len(plains) >= 2:
        low, high = nets[("plain", plains[0])], nets[("plain", plains[-1])]
        shown = mean(high, "train") > mean(low, "train")
        out.append(f"Degradation: plain-{high.depth}'s training error "
                   f"({mean(high, 'train'):.2f}%) is {'above' if shown else 'NOT above'} "
                   f"plain-{low.depth}'s ({mean(low, 'train'):.2f}%): "
                   f"{'shown' if shown else 'NOT shown'}.")
    both = sorted(d for k, d in nets if k == "plain" and ("ResNet", d) in nets)
    if both:
        d = both[-1]
        plain, res = nets[("plain", d)], nets[("ResNet", d)]
        shown = all(mean(res, k) < mean(plain, k) for k in ("train", "test"))
        out.append(f"Residual learning: at {d} layers the ResNet's training and test error "
                   f"({mean(res, 'train'):.2f}% / {mean(res, 'test'):.2f}%) are "
                   f"{'below' if shown else 'NOT both below'} the plain net's "
                   f"({mean(plain, 'train'):.2f}% / {mean(plain, 'test'):.2f}%): "
                   f"{'shown' if shown else 'NOT shown'}.")
    return out


def how_trained(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """What the runs record of their own testing and warm-up: how BatchNorm was evaluated
    (a run made before the lab recorded it says nothing), and each warmed-up net's warm-up,
    the steps it trained at a tenth of the recipe's learning rate before it first left it."""
    said: dict[str, list[str]] = {}      # each wording -> the nets whose runs recorded it
    for (kind, depth), net in sorted(nets.items(), key=lambda item: (item[0][0] != "plain",
                                                                     item[0][1])):
        for words in dict.fromkeys(h.get("setup", {}).get("eval_bn") for h in net.histories):
            if words:
                said.setdefault(words, []).append(f"{kind}-{depth}")
    notes = ["BatchNorm at evaluation, as the runs record it: " + "; ".join(
        words + (f" ({', '.join(names)})" if len(said) > 1 else "")
        for words, names in said.items()) + "."] if said else []
    warmed, bound = [], ""
    for (kind, depth), net in sorted(nets.items(), key=lambda item: (item[0][1], item[0][0])):
        runs = [h for h in net.histories if h.get("lr")]
        warmup = [warmup_steps(h) for h in runs]
        if not any(warmup):
            continue
        bound = f"{100 * runs[0]['setup']['recipe']['warmup_error']:.0f}%"
        if all(w == len(h["lr"]) for w, h in zip(warmup, runs, strict=True)):
            warmed.append(f"{kind}-{depth} never left it (its training error never fell under "
                          f"{bound}, so it trained at the lower rate for all "
                          f"{len(runs[0]['lr']):,} steps, every seed)")
        else:
            warmed.append(f"{kind}-{depth} for its first " + (
                f"{warmup[0]} steps (every seed)" if len(set(warmup)) == 1 else
                f"{' and '.join(map(str, warmup))} steps (one number per seed)"))
    if warmed:
        notes.append(f"Warm-up (a tenth of the learning rate until the training error is under "
                     f"{bound}): " + "; ".join(warmed) + "; the other nets had none.")
    return notes


def warmup_steps(history: dict) -> int:
    """The leading steps a run trained at a tenth of its recipe's learning rate (its warm-up);
    all of them if it never left it, 0 for a run that records no recipe."""
    recipe = history.get("setup", {}).get("recipe")
    if not recipe:
        return 0
    warm = recipe["lr"] / 10
    return next((i for i, lr in enumerate(history["lr"]) if not math.isclose(lr, warm)),
                len(history["lr"]))


def error_before(history: dict, fraction: float) -> float:
    """Training error (%) just before `fraction` of the steps: the mean batch error of the 5%
    of the steps before it (at 1.0, `final_train_error`)."""
    errors = history["train_error"]
    window = max(1, len(errors) // 20)
    end = max(window, round(fraction * len(errors)))
    return 100 * sum(errors[end - window:end]) / window


def at_half_and_end(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """Each net's training error just before the first lr drop (half the steps) and at the
    end, mean over seeds: how much of its learning came after the drop."""
    if not any(net.histories for net in nets.values()):
        return []
    mean = lambda net, f: statistics.mean(error_before(h, f) for h in net.histories)
    order = sorted(nets, key=lambda kind_depth: (kind_depth[0] != "plain", kind_depth[1]))
    return ["Training error at half the steps (the first lr drop) -> at the end: " + "; ".join(
        f"{kind}-{depth} {mean(nets[kind, depth], 0.5):.2f}% -> "
        f"{mean(nets[kind, depth], 1.0):.2f}%" for kind, depth in order
        if nets[kind, depth].histories) + "."]


def window_noise(history: dict) -> str:
    """How much two of `error_before`'s windows differ by chance alone: the binomial noise of
    a mean error over a window's images, for the difference of two such means."""
    errors = history["train_error"]
    images = max(1, len(errors) // 20) * history["setup"]["batch_size"]
    p = statistics.mean(errors[-len(errors) // 20:])
    noise = 100 * math.sqrt(2 * p * (1 - p) / images)
    return (f"two windows of {images:,} training images each differ by chance by about "
            f"±{noise:.2f} points, one std, at ResNet-{history['setup']['depth']}'s error")


def resnets_at_the_end(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """Whether the ResNets' order by depth is the order they would keep: how far each one's
    training error still fell over the last fifth (after the last lr drop at 75%, so at one
    learning rate). The deepest ResNet still falling by more than the shallowest, beyond the
    seeds' range, means it has not converged when the budget ends."""
    depths = sorted(d for k, d in nets if k == "ResNet")
    if len(depths) < 2:
        return []
    runs = {d: nets[("ResNet", d)].histories for d in depths}
    moved = {d: [error_before(h, 1.0) - error_before(h, 0.8) for h in runs[d]] for d in depths}
    lo, hi = depths[0], depths[-1]
    shown = max(moved[hi]) < min(moved[lo])
    return [
        "Still falling at the end? Over the last fifth of the steps (one learning rate) the "
        "ResNets' training error rose (+) or fell (-) by: " + "; ".join(
            f"ResNet-{d} {statistics.mean(moved[d]):+.2f} points (seeds "
            f"{min(moved[d]):+.2f} to {max(moved[d]):+.2f})" for d in depths)
        + f" ({window_noise(runs[hi][0])}). "
        f"Was ResNet-{hi} still catching up with ResNet-{lo} when the budget ended (its "
        "error falling faster, on every seed)? "
        + ("Yes: the budget ends before the deeper ResNet has converged, so the order by depth "
           "at this budget is not the order at convergence." if shown else
           "No: its place in the order by depth is what this budget gives, not a run cut "
           "off early."),
    ]


def seed_band(ax, xs: list[list[int]], ys: list[list[float]], colour, width: float,
              label: str | None) -> list[float]:
    """The mean over seeds as a line, and the band from the lowest to the highest seed;
    returns the mean (curves cut to the shortest seed's)."""
    n = min(map(len, ys))
    x, columns = xs[0][:n], list(zip(*(y[:n] for y in ys), strict=True))
    mean = [statistics.mean(c) for c in columns]
    if n:
        ax.plot(x, mean, color=colour, lw=width, label=label)
    if n and len(ys) > 1:
        ax.fill_between(x, [min(c) for c in columns], [max(c) for c in columns], color=colour,
                        alpha=0.15, lw=0)
    return mean


def figure6(grid: Grid, nets: dict[tuple[str, int], NetRuns], title: str) -> Figure:
    """He et al.'s Fig. 6 from our runs: plain left, ResNets right; thin = training error,
    bold = test error; the mean over seeds, the band from the lowest to the highest seed."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")     # no pyplot: any backend stays
    axes = fig.subplots(1, 2, sharey=True)
    depths = sorted({*grid.depths, *grid.plain_depths})
    viridis = matplotlib.colormaps["viridis"]
    top, window = 5.0, max(1, grid.steps // 50)
    for ax, kind in zip(axes, ("plain", "ResNet"), strict=True):
        for i, depth in enumerate(depths):
            if (kind, depth) not in nets:
                continue
            runs = nets[(kind, depth)].histories
            colour = viridis(0.85 * i / max(1, len(depths) - 1))
            seed_band(ax, [h["step"] for h in runs],
                      [running_mean([100 * e for e in h["train_error"]], window) for h in runs],
                      colour, 0.9, None)
            test = seed_band(ax, [h["test_step"] for h in runs],
                             [[100 * e for e in h["test_error"]] for h in runs], colour, 2.4,
                             f"{kind}-{depth}")
            top = max([top, *(1.3 * t for t in test[len(test) // 5:])])
        ax.set(title=f"{'plain' if kind == 'plain' else 'residual'} nets", xlabel="training step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="bold: test, thin: train", fontsize=8, title_fontsize=8)
    axes[0].set(ylabel="error (%)", ylim=(0, min(100, top)))
    fig.suptitle(title, fontsize=10)
    return fig


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def measured_label(grid: Grid, results: list[dict], calls: list[dict]) -> str:
    """Where and how the measured numbers came about."""
    if not results:
        return "Nothing finished yet."
    devices = sorted({r["device"] for r in results})
    threads = sorted({r["threads"] for r in results})
    size = f"{grid.size}×{grid.size}" if grid.size else "full-size"
    train = sum(r["history"]["seconds"] for r in results)
    wall = sum(c["seconds"] for c in calls)
    return (f"Measured: {results[0]['dataset']} ({size} images"
            f"{f', {grid.n_train:,} training images' if grid.n_train else ''}), width "
            f"{grid.width}, {grid.steps:,} steps at batch {grid.batch_size}, "
            f"{'with' if grid.augment else 'without'} crop and flip, {grid.recipe} recipe; "
            f"on {', '.join(devices)} with {'/'.join(map(str, threads))} thread(s) per run; "
            f"{duration(train)} of training, {duration(wall)} of wall time over "
            f"{len(calls)} call(s) of `resnet-lab reproduce`{on_ray(calls)}.")


def on_ray(calls: list[dict]) -> str:
    """" (Ray)" when every call ran its runs on Ray, " (2 of 3 on Ray)" when some did."""
    ray = sum(bool(c.get("ray")) for c in calls)
    return "" if not ray else " (Ray)" if ray == len(calls) else f" ({ray} of {len(calls)} on Ray)"


@dataclass
class Contents:
    """Everything the report says, before it is written as Markdown or HTML."""

    status: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str]
    findings: list[str]
    failed: list[str]
    title: str = "Plain vs residual nets over depth (He et al. 2015, Fig. 6 and Table 6)"


def contents(grid: Grid, results: list[dict], failures: list[dict], calls: list[dict]
             ) -> Contents:
    """The report's text, from what `load` read."""
    nets = runs_by_net(results)
    total = len(grid.runs())
    header, rows = table(grid, nets)
    status = ("All runs finished." if len(results) == total else
              f"{len(results)} of {total} runs finished; the same command again goes on.")
    notes = [measured_label(grid, results, calls), f"Quoted: {HE2015_TABLE6_SOURCE}.",
             HE2015_FIG6_PLAIN,
             "Training error: the mean batch error (augmented images) of the last 5% of the "
             "steps. Test error: the whole test set at the end. Mean ± std over seeds.",
             *how_trained(nets)]
    failed = [f"{f['run']}: {f['error'].strip().splitlines()[-1]}" for f in failures]
    said = (findings(nets) + at_half_and_end(nets) + resnets_at_the_end(nets)
            or ["Not enough finished runs to say."])
    return Contents(status, header, rows, notes, said, failed)


def to_markdown(c: Contents, image: str | None = "figure6.png") -> str:
    lines = [f"# {c.title}", "", c.status, ""]
    if image:
        lines += [f"![Figure 6, reproduced]({image})", ""]
    lines += ["| " + " | ".join(c.header) + " |", "|" + "---|" * len(c.header),
              *("| " + " | ".join(r) + " |" for r in c.rows), "",
              *(f"- {n}" for n in c.notes), "", "## What it shows", "",
              *(f"- {f}" for f in c.findings), ""]
    if c.failed:
        lines += ["## Failed runs (tried twice; the same command again tries them once more)",
                  "", *(f"- {f}" for f in c.failed), ""]
    return "\n".join(lines)


def to_html(c: Contents, image: str = "figure6.png") -> str:
    esc = html.escape
    items = lambda xs: "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in xs) + "</ul>"
    row = lambda tag, r: "<tr>" + "".join(f"<{tag}>{esc(x)}</{tag}>" for x in r) + "</tr>"
    page = ["<!doctype html><meta charset='utf-8'>", f"<title>{esc(c.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:auto}table{border-"
            "collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em}</style>",
            f"<h1>{esc(c.title)}</h1>", f"<p>{esc(c.status)}</p>",
            f"<img src='{image}' alt='Figure 6, reproduced' style='max-width:100%'>",
            "<table>" + row("th", c.header) + "".join(row("td", r) for r in c.rows) + "</table>",
            items(c.notes), "<h2>What it shows</h2>", items(c.findings)]
    if c.failed:
        page += ["<h2>Failed runs</h2>", items(c.failed)]
    return "\n".join(page) + "\n"


def write_report(folder: str | Path) -> Path:
    """Write figure6.png, report.md and report.html into a reproduce folder; return report.md."""
    folder = Path(folder)
    grid, results, failures, calls = load(folder)
    title = (f"{results[0]['dataset'] if results else grid.dataset}, {grid.steps:,} steps, "
             f"{len(results)} of {len(grid.runs())} runs")
    figure6(grid, runs_by_net(results), title).savefig(folder / "figure6.png", dpi=110)
    c = contents(grid, results, failures, calls)
    (folder / "report.md").write_text(to_markdown(c))
    (folder / "report.html").write_text(to_html(c))
    (folder / "report.json").write_text(json.dumps(asdict(c), indent=1, ensure_ascii=False))
    return folder / "report.md"


def to_text(c: Contents) -> str:
    """The report as plain text, its table in aligned columns (a notebook's printout)."""
    header = ["depth", "plain train %", "plain test %", "ResNet train %", "ResNet test %",
              "He et al. (quoted)"]
    widths = [max(len(r[i]) for r in [header, *c.rows]) for i in range(len(header))]
    line = lambda r: "  ".join(x.rjust(w) for x, w in zip(r, widths, strict=True))
    return "\n".join([c.status, "", line(header), *map(line, c.rows), "",
                      *(f"* {n}" for n in c.notes), "", *(f"* {f}" for f in c.findings),
                      *(f"* failed: {f}" for f in c.failed)])


def written(folder: str | Path) -> Contents:
    """A reproduce folder's report: made from its runs, or, without them (a clone), read from
    the report.json written with them."""
    folder = Path(folder)
    grid, results, failures, calls = load(folder)
    if not results and (folder / "report.json").exists():
        return Contents(**json.loads((folder / "report.json").read_text()))
    return contents(grid, results, failures, calls)


def show(folder: str | Path) -> None:
    """In a notebook: the report of a reproduce folder as text, then its figure (the PNG
    written with it). Without its runs (a clone) it shows the report written with them."""
    from IPython.display import Image, display
    folder = Path(folder)
    if not (folder / "grid.json").exists():
        print(f"No reproduce report in {folder} (the lab's own is docs/figure6 in its "
              "repository; `resnet-lab reproduce --out FOLDER` makes one).")
        return
    print(to_text(written(folder)))                       # the figure is drawn already
    display(Image(filename=str(folder / "figure6.png")))
