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
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from ..nets.paper import HE2015_FIG6_PLAIN, HE2015_TABLE6, HE2015_TABLE6_SOURCE
from ..training.history import running_mean
from .findings import (
    NetRuns,
    at_half_and_end,
    findings,
    how_trained,
    per_seed,
    resnets_at_the_end,
    runs_by_net,
    twins_changed,
)
from .runs import Grid


def load(folder: Path) -> tuple[Grid, list[dict], list[dict], list[dict]]:
    """The grid, its finished runs, its failures and the calls that ran it."""
    grid = Grid.from_dict(json.loads((folder / "grid.json").read_text()))
    read = lambda kind: [json.loads(p.read_text()) for p in sorted((folder / kind).glob("*.json"))]
    calls = folder / "calls.json"
    return grid, read("runs"), read("failed"), json.loads(calls.read_text()) if calls.exists() \
        else []


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
             *how_trained(nets), *per_seed(nets), *twins_changed(nets)]
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
              "He et al. ResNet test % (quoted)"]
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
