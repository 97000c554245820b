"""What a reproduced grid's runs show, and how they were trained: the findings and notes of
the report (`report.py` writes them beside the table and the figure).

`runs_by_net` groups the finished runs by (kind, depth) as `NetRuns`; `findings` says
whether He et al.'s two claims show; `at_half_and_end` and `resnets_at_the_end` read the
curves; `how_trained`, `per_seed` and `twins_changed` say how the runs tested, warmed up and
differed, from their own records.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ..training.comparison import one_change


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
    for kind, depth in plain_first(nets):
        for words in dict.fromkeys(h.get("setup", {}).get("eval_bn")
                                   for h in nets[kind, depth].histories):
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


def per_seed(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """Each seed's final errors, so that a ± over two seeds can be read back."""
    said = [f"{kind}-{depth} " + ", ".join(f"{train:.2f} / {test:.2f}" for train, test in
                                          zip(nets[kind, depth].train, nets[kind, depth].test,
                                              strict=True))
            for kind, depth in plain_first(nets) if nets[kind, depth].train]
    return ["Each seed's training / test error %: " + "; ".join(said) + "."] if said else []


def twins_changed(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """What changed between the ResNet and the plain net of each depth, read from their first
    seeds' setups (`comparison.one_change`): their lines, joined, one note per depth. Where
    the recipe's warm-up rule warmed either net up, its outcome too: the same rule, but each
    net's own number of steps at the lower rate."""
    notes = []
    for (kind, depth), plain in sorted(nets.items()):
        twin = nets.get(("ResNet", depth))
        if kind != "plain" or not twin or not (plain.histories and twin.histories):
            continue
        first = twin.histories[0], plain.histories[0]
        a, b = (h.get("setup") for h in first)
        if a and b:
            warm = [warmup_steps(h) for h in first]
            outcome = (f" / the warm-up rule's outcome (steps at a tenth of the rate): "
                       f"ResNet-{depth} {warm[0]}, plain-{depth} {warm[1]}" if any(warm) else "")
            notes.append(f"ResNet-{depth} vs plain-{depth}, their first seeds: "
                         + " / ".join(one_change(a, b).lines()) + outcome)
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


def plain_first(nets: dict[tuple[str, int], NetRuns]) -> list[tuple[str, int]]:
    """The nets' (kind, depth) keys as the notes list them: plain nets, then ResNets, each by
    depth."""
    return sorted(nets, key=lambda kind_depth: (kind_depth[0] != "plain", kind_depth[1]))


def window_steps(errors: list[float]) -> int:
    """The steps a training-error reading averages: the last 5% of the run, at least one."""
    return max(1, len(errors) // 20)


def error_before(history: dict, fraction: float) -> float:
    """Training error (%) just before `fraction` of the steps: the mean batch error of the 5%
    of the steps before it (at 1.0, `final_train_error`)."""
    errors = history["train_error"]
    window = window_steps(errors)
    end = max(window, round(fraction * len(errors)))
    return 100 * sum(errors[end - window:end]) / window


def at_half_and_end(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """Each net's training error just before the first lr drop (half the steps) and at the
    end, mean over seeds: how much of its learning came after the drop."""
    if not any(net.histories for net in nets.values()):
        return []
    mean = lambda net, f: statistics.mean(error_before(h, f) for h in net.histories)
    return ["Training error at half the steps (the first lr drop) -> at the end: " + "; ".join(
        f"{kind}-{depth} {mean(nets[kind, depth], 0.5):.2f}% -> "
        f"{mean(nets[kind, depth], 1.0):.2f}%" for kind, depth in plain_first(nets)
        if nets[kind, depth].histories) + "."]


def window_noise(history: dict) -> str:
    """How much two of `error_before`'s windows differ by chance alone: the binomial noise of
    a mean error over a window's images, for the difference of two such means."""
    errors = history["train_error"]
    window = window_steps(errors)
    images = window * history["setup"]["batch_size"]
    p = statistics.mean(errors[-window:])
    noise = 100 * math.sqrt(2 * p * (1 - p) / images)
    return (f"two windows of {images:,} training images each differ by chance by about "
            f"±{noise:.2f} points, one std, at ResNet-{history['setup']['depth']}'s error")


def resnets_at_the_end(nets: dict[tuple[str, int], NetRuns]) -> list[str]:
    """Where the ResNets' order by depth stands when the budget ends: how far the deepest is
    behind the shallowest at half the steps and at the end, and how far each one's training
    error still moved over the last fifth (after the last lr drop at 75%, so at one learning
    rate, the smallest). A ResNet whose error still falls there has not converged."""
    depths = sorted(d for k, d in nets if k == "ResNet")
    if len(depths) < 2:
        return []
    runs = {d: nets[("ResNet", d)].histories for d in depths}
    moved = {d: [error_before(h, 1.0) - error_before(h, 0.8) for h in runs[d]] for d in depths}
    lo, hi = depths[0], depths[-1]
    gap = {f: statistics.mean(error_before(h, f) for h in runs[hi])
           - statistics.mean(error_before(h, f) for h in runs[lo]) for f in (0.5, 1.0)}
    falling = [d for d in depths if max(moved[d]) < 0]
    return [
        f"ResNet-{hi} minus ResNet-{lo}, training error: {gap[0.5]:+.2f} points at half the "
        f"steps, {gap[1.0]:+.2f} at the end. Over the last fifth of the steps (one learning "
        "rate, the smallest) the ResNets' training error rose (+) or fell (-) by: " + "; ".join(
            f"ResNet-{d} {statistics.mean(moved[d]):+.2f} points (seeds "
            f"{min(moved[d]):+.2f} to {max(moved[d]):+.2f})" for d in depths)
        + f" ({window_noise(runs[hi][0])}). "
        + (f"Still falling on every seed: {', '.join(f'ResNet-{d}' for d in falling)}; the "
           "budget ended while they were still learning." if falling else
           "None still fell on every seed: at the smallest rate the curves have flattened, so "
           "this is the order this budget gives. What a longer budget would give (more steps "
           "at the large rate too) this run cannot say."),
    ]
