"""Bar charts of measured numbers, one bar per net: a single value, or the runs of several
seeds as their mean, their range as an error bar and each run as a dot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np


def bar_chart(values: Mapping[str, float | Sequence[float]], ax: plt.Axes | None = None, *,
              ylabel: str = "test error (%)", title: str = "", scale: float = 100.0
              ) -> plt.Figure:
    """One bar per name of `values` (multiplied by `scale`: fractions -> percent), its value
    written on it; where a name has several values (one per seed), the bar is their mean
    with their range and the values themselves drawn over it."""
    if not values:
        raise ValueError("values={} is not allowed; give at least one name and its value(s)")
    fig = ax.figure if ax is not None else plt.figure(figsize=(6, 3.2))
    ax = ax or fig.add_subplot()
    for i, value in enumerate(values.values()):
        runs = scale * np.atleast_1d(np.asarray(value, dtype=float))
        mean = runs.mean()
        ax.bar(i, mean, color=f"C{i}", alpha=0.75)
        if len(runs) > 1:
            ax.errorbar(i, mean, yerr=[[mean - runs.min()], [runs.max() - mean]], color="k",
                        capsize=4)
            ax.plot(np.full(len(runs), i), runs, "k.", alpha=0.6)
        ax.text(i, mean / 2, f"{mean:.1f}", ha="center", va="center", color="white",
                fontweight="bold")
    ax.set_xticks(range(len(values)), list(values), fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
