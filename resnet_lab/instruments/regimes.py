"""What a gradient profile says: the first layer's gradient over the last one's, and the regime
word ("vanishing", "exploding", "healthy"). One definition, one set of thresholds, for the
app, the lessons and the tests alike."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

VANISHING_BELOW = 1e-2   # the first layer gets < 1/100 of the last layer's gradient
EXPLODING_ABOVE = 1e2    # the first layer gets > 100x the last layer's gradient


def first_last_ratio(profile: Mapping[str, float] | Sequence[float]) -> float:
    """The first weight layer's gradient norm over the last one's (the fc layer in a ResNet):
    how much of the gradient reaches the input end of the network. 0 when the first layer's
    gradient is exactly 0 (deep enough without normalization, it underflows float32 in the
    backward pass itself), inf when only the last layer's is, nan when both are."""
    values = list(profile.values()) if isinstance(profile, Mapping) else list(profile)
    if len(values) < 2:
        raise ValueError(f"profile has {len(values)} layer(s); a ratio needs at least two")
    first, last = float(values[0]), float(values[-1])
    if last == 0:
        return math.nan if first == 0 else math.inf
    return first / last


def regime(profile: Mapping[str, float] | Sequence[float]) -> str:
    """"vanishing" (ratio < VANISHING_BELOW), "exploding" (> EXPLODING_ABOVE), "healthy", or
    "no gradient" when every layer's gradient is zero (nothing to compare)."""
    values = list(profile.values()) if isinstance(profile, Mapping) else list(profile)
    if not any(values):
        return "no gradient"
    ratio = first_last_ratio(values)
    if math.isnan(ratio) or ratio < VANISHING_BELOW:   # nan: nothing reached either end
        return "vanishing"
    if ratio > EXPLODING_ABOVE:
        return "exploding"
    return "healthy"
