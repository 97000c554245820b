"""Does every lesson verdict hold on every seed, dataset and CPU? Margins measured in one run.

    python benchmarks/bench_verdicts.py [--seeds 5] [--kernels default avx2] [--out FILE]

Runs every quick-mode verdict experiment of the lessons (the functions of
`resnet_lab.lessons.experiments` that the lessons call) for each seed, on each dataset the
lesson can use in quick mode (Fashion-MNIST when it is on this machine, and the built-in
synthetic set), under each CPU kernel set: "default" (what torch picks here: AVX-512 or AMX
where the CPU has them) and "avx2" (a laptop's: ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2). Each kernel set runs in a process of its own with one thread, side
by side.

`--summarize FILE` summarizes the rows of an earlier run (its --out) instead of running.
Prints, per verdict, how many runs showed it and the min and median margin (the measured value
over the claim's threshold, > 1 = shown), writes every margin as JSON lines to --out, and the
summary per claim function to --margins (the committed file the lessons read, so each verdict
in a lesson shows its spread beside this run's numbers).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from resnet_lab import lessons
from resnet_lab.lessons.verdicts import margin_text as fmt

MARGINS_FILE = lessons.MARGINS_FILE     # the summary the lessons read: one home for its path
RESNEXT = Path(__file__).parents[1] / "docs" / "resnext"   # lesson 4's longer run, committed
EXACT = "exact"        # a check that no seed changes: exact numbers, or a committed run's
KERNELS = {"default": {}, "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}}


def verdicts_of_seed(seed: int) -> list[tuple[str, str, object]]:
    """(dataset, lesson, Verdict) of every verdict experiment for one seed."""
    from resnet_lab import lessons
    from resnet_lab.instruments import cost
    from resnet_lab.lessons import experiments as ex
    from resnet_lab.nets import models

    s = lessons.QUICK
    out = [("-", "1", ex.sigmoid_vanishes(ex.mlp_profiles(seed))),
           ("synthetic 8x8", "1", ex.early_layers_freeze(ex.train_sigmoid_mlp(s.steps,
                                                                               seed).moved)),
           ("-", "2", ex.identity_is_easier(ex.identity_fits(seed=seed))),
           ("-", "2", ex.skips_carry_the_gradient(ex.block_gradients(s.size, seed)))]
    block, x, forms = ex.three_forms(seed)
    out += [("-", "4", ex.forms_agree(forms)),
            ("-", "4", ex.grouped_is_faster(ex.time_forms(block, x)))]
    for name in s.degradation_order:
        try:
            images = lessons.lesson_data(s, (name,))
        except RuntimeError:
            continue                                    # not on this machine
        nets, runs = lessons.degradation_runs(s, images, seed=seed)
        table = ex.regime_table(images, seed)
        learning = {n: ex.layer_learning(nets[n], runs[n]) for n in ("plain-20", "plain-56")}
        out += [(name, "1", ex.deeper_plain_trains_worse(runs)),
                (name, "1", ex.deep_plain_early_layers_slow(learning)),
                (name, "1", ex.plain_vanishes_without_bn(table)),
                (name, "1", ex.plain_explodes_with_bn(table)),
                (name, "1", ex.residual_stays_healthy(table)),
                (name, "2", ex.skips_reduce_degradation(runs)),
                (name, "2", ex.responses_are_smaller(ex.layer_response_stds(nets, images))),
                (name, "3", ex.block_types_match(ex.block_type_runs(s, images, seed)[1])),
                (name, "4", ex.features_transfer(ex.backbone_probes(s, images, seed).values)),
                (name, "4", ex.deep_backbones_need_skips(
                    ex.backbone_probes(s, images, seed, depth=56).values))]
        if name in s.datasets:                          # lesson 5 uses the lesson's data
            chance = 1 - 1 / len(images.classes)
            pair20 = {n: nets[n] for n in ("plain-20", "ResNet-20")}
            out += [(name, "5", ex.ensemble_survives_deletion(
                        ex.deletion_errors(pair20, images), chance)),
                    (name, "5", ex.preact_trains_better(ex.preact_runs(s, images, seed)))]
    if seed == 0:                  # exact checks: no seed, no training (or a committed run's)
        table = cost.summary(models.resnet50(), (1, 3, 224, 224))
        blocks = [len(getattr(models.resnet50(), f"layer{i}")) for i in range(1, 5)]
        out += [(EXACT, "3", ex.bottleneck_saves()),
                (EXACT, "3", ex.resnet50_matches(table, blocks)),
                (EXACT, "4", ex.same_budget(ex.budget_variants())),
                (EXACT, "4", ex.resnext_keeps_up(ex.load_reference(RESNEXT)))]
    return out


def worker(kernel: str, seeds: list[int]) -> None:
    """One kernel set's process: one JSON line per verdict, as soon as it is measured."""
    import torch

    torch.set_num_threads(1)
    for seed in seeds:
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):    # the lessons' own lines, not JSON
            measured = verdicts_of_seed(seed)
        for dataset, lesson_no, v in measured:
            print(json.dumps({"kernel": kernel, "seed": seed, "dataset": dataset,
                              "lesson": lesson_no, "name": v.name, "claim": v.claim,
                              "margin": v.margin,
                              "evidence": v.evidence}), flush=True)
        print(json.dumps({"kernel": kernel, "seed": seed,
                          "seconds": time.perf_counter() - start}), flush=True)


def table(rows: list[dict]) -> str:
    """Per verdict: runs shown / runs, min and median margin; markdown."""
    by_claim: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        by_claim[r["lesson"], r["claim"]].append(r["margin"])
    lines = ["| lesson | verdict | shown | min margin | median margin |", "|---|---|---|---|---|"]
    for (lesson_no, claim), margins in sorted(by_claim.items()):
        shown = sum(m > 1 for m in margins)
        lines.append(f"| {lesson_no} | {claim} | {shown}/{len(margins)} | {fmt(min(margins))} "
                     f"| {fmt(statistics.median(margins))} |")
    return "\n".join(lines)


def margins(rows: list[dict], kernels: list[str]) -> dict:
    """The summary the lessons read: per claim function, its runs (what they spanned), how many
    showed it, and the min and median margin."""
    by_name: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_name[r["name"]].append(r)
    out = {}
    for name, runs in sorted(by_name.items()):
        values = [r["margin"] for r in runs]
        datasets = sorted({r["dataset"] for r in runs} - {"-", EXACT})
        kernel_sets = f"{len({r['kernel'] for r in runs})} CPU kernel set(s)"
        if runs[0]["dataset"] == EXACT:
            over = [f"{kernel_sets}; no seed, as its numbers are exact or a committed run's"]
        else:
            over = [f"{len({r['seed'] for r in runs})} seed(s)",
                    *([" and ".join(datasets)] if datasets else []), kernel_sets]
        out[name] = {"lesson": runs[0]["lesson"], "claim": runs[-1]["claim"], "runs": len(runs),
                     "over": " x ".join(over), "shown": f"{sum(m > 1 for m in values)}/{len(runs)}",
                     "min": fmt(min(values)), "median": fmt(statistics.median(values)),
                     "max": fmt(max(values))}
        if len(datasets) > 1:                  # each data set's own smallest and median margin
            out[name]["by_data"] = {d: {"min": fmt(min(own)), "median": fmt(statistics.median(own))}
                                    for d in datasets
                                    for own in [[r["margin"] for r in runs if r["dataset"] == d]]}
    return {"made_by": "benchmarks/bench_verdicts.py", "machine": machine(), "verdicts": out}


def machine() -> str:
    """The CPU and torch the margins were measured with."""
    import platform

    import torch

    info = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""  # noqa: SIM115
    cpu = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def run_workers(args: argparse.Namespace) -> list[dict]:
    """One worker process per kernel set, side by side; every verdict's row, all seeds."""
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    procs = {k: subprocess.Popen([sys.executable, __file__, "--worker", k, "--seeds",
                                  str(args.seeds)], env={**os.environ, **KERNELS[k]},
                                 stdout=open(f"{args.out}.{k}", "w"))     # noqa: SIM115
             for k in args.kernels}
    rows = []
    for k, proc in procs.items():
        if proc.wait():
            sys.exit(f"the {k} worker failed")
        with open(f"{args.out}.{k}") as f:
            for row in map(json.loads, f):
                if "seconds" in row:
                    print(f"{k}: seed {row['seed']} took {row['seconds']:.0f} s")
                else:
                    rows.append(row)
        os.remove(f"{args.out}.{k}")
    with open(args.out, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return rows


def report(rows: list[dict], margins_file: str) -> None:
    """The table, the smallest margin, and the summary the lessons read (unless '')."""
    seeds = len({r["seed"] for r in rows})
    kernels = sorted({r["kernel"] for r in rows})
    print(f"\n{seeds} seeds x kernels {', '.join(kernels)}; datasets: "
          f"{', '.join(sorted({r['dataset'] for r in rows} - {'-'}))}\n")
    print(table(rows))
    if margins_file:
        summary = margins(rows, kernels)
        summary["made_by"] = f"benchmarks/bench_verdicts.py --seeds {seeds} --kernels " \
                             f"{' '.join(kernels)}"
        with open(margins_file, "w") as f:
            json.dump(summary, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"\nthe spread of every verdict written to {margins_file}")
    worst = min(rows, key=lambda r: r["margin"])
    print(f"\nsmallest margin {fmt(worst['margin'])}: {worst['claim']} "
          f"({worst['kernel']}, seed {worst['seed']}, {worst['dataset']}): {worst['evidence']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    parser.add_argument("--out", default="runs/bench_verdicts.jsonl")
    parser.add_argument("--margins", default=str(MARGINS_FILE),
                        help="the summary the lessons read ('' to leave it alone)")
    parser.add_argument("--summarize", metavar="JSONL", nargs="+",
                        help="summarize the rows of earlier runs instead of running")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, list(range(args.seeds)))
        return
    start = time.perf_counter()
    if args.summarize:                     # an --out file, or a worker's (its seeds' rows)
        rows = []
        for path in args.summarize:
            with open(path) as f:
                rows += [r for r in map(json.loads, filter(str.strip, f)) if "seconds" not in r]
    else:
        rows = run_workers(args)
    report(rows, args.margins)
    print(f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
