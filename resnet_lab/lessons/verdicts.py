"""A lesson's claim, measured: the one-line verdict a cell prints, and under it the spread that
bench_verdicts measured for the same claim function over seeds, data sets and CPU kernels."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

TINY = 1e-30   # stands in for an exact zero in a ratio: a margin is then huge, not inf


def margin_text(margin: float) -> str:
    """A margin as the lessons print it: "exact" for a count with no noise, "unbounded" where
    the value the claim is set against was zero (a ratio over TINY: the opposite never
    showed), else three digits."""
    if margin == float("inf"):
        return "exact"
    if margin >= 1 / (1e6 * TINY):
        return "unbounded"
    return f"{margin:.3g}" if margin < 1e4 else f"{margin:.0e}"


@dataclass(frozen=True)
class Verdict:
    """A lesson's claim, measured. `margin` is the measured value over the threshold that
    states the claim, oriented so that above 1 means shown (2 = twice as clear as the claim
    needs); `evidence` says what was measured and the claim's threshold; `name` is the claim
    function that made it (the key of its measured spread, `MARGINS_FILE`)."""

    claim: str
    margin: float
    evidence: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "margin", float(self.margin))   # not a numpy scalar

    @property
    def shown(self) -> bool:
        return self.margin > 1

    def __str__(self) -> str:
        return (f"VERDICT {self.claim}: {self.evidence} -> {'shown' if self.shown else 'NOT shown'}"
                f" (margin {margin_text(self.margin)})")


CLAIMS: dict[str, Callable[..., Verdict]] = {}   # every claim function of the lessons, by name


def claim(fn: Callable[..., Verdict]) -> Callable[..., Verdict]:
    """Mark `fn` as a lesson's claim function: registered in `CLAIMS`, and each Verdict it
    returns carries its name, so a lesson can show the spread bench_verdicts measured for it."""
    @functools.wraps(fn)
    def named(*args, **kwargs) -> Verdict:
        return replace(fn(*args, **kwargs), name=fn.__name__)
    if fn.__name__ in CLAIMS:
        raise ValueError(f"a claim function named {fn.__name__!r} exists already: names are "
                         "the keys of the measured spreads, so each must be unique")
    CLAIMS[fn.__name__] = named
    return named


# bench_verdicts' summary: per claim function, its runs, how many showed it, min/median margin
MARGINS_FILE = Path(__file__).parent / "experiments" / "verdict_margins.json"


def spread(name: str) -> str:
    """One line: what bench_verdicts measured for claim function `name` over seeds, data sets
    and CPU kernel sets ("" for a verdict that is no claim function's)."""
    if not name:
        return ""
    if not MARGINS_FILE.exists():
        return f"  spread: not measured yet ({MARGINS_FILE.name}: run benchmarks/bench_verdicts.py)"
    measured = json.loads(MARGINS_FILE.read_text())["verdicts"].get(name)
    if measured is None:
        return f"  spread: {name} is not in {MARGINS_FILE.name} (run benchmarks/bench_verdicts.py)"
    runs = f"  spread over {measured['runs']} runs of bench_verdicts ({measured['over']}): " \
           f"shown in {measured['shown']}, "
    if measured.get("max") == measured["min"]:       # one margin on every run (exact, or unbounded)
        return runs + f"margin {measured['min']} in every run"
    by_data = measured.get("by_data")
    if by_data:          # two data sets: each one's own margins, not a median pooled over both
        return runs + "margin " + "; ".join(f"{d} min {m['min']}, median {m['median']}"
                                            for d, m in by_data.items())
    return runs + f"margin min {measured['min']}, median {measured['median']}"


def verdict(v: Verdict) -> None:
    """Print the verdict's line (whether the lesson's phenomenon showed in this run) and, below
    it, the spread of its margin that bench_verdicts measured over seeds, data and CPUs."""
    print(v)
    if v.name:
        print(spread(v.name))
