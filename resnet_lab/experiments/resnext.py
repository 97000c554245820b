"""Lesson 4, ResNeXt: the three equivalent forms, the grouped convolution's speed, and more
paths at the same parameter budget."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..cardinality import AggregatedTransform
from ..configs import ImageNetConfig
from ..cost import complexity
from ..lesson import TINY, Verdict
from ..models import ResNet, build_seeded, initialize


def three_forms(seed: int = 0) -> tuple[AggregatedTransform, torch.Tensor,
                                        dict[str, torch.Tensor]]:
    """One ResNeXt transformation (32 paths of 4 channels) computed three ways on one batch."""
    block = build_seeded(lambda: AggregatedTransform(256, cardinality=32, width=4),
                         lambda m, g: initialize(m, generator=g), seed)
    x = torch.randn(4, 256, 14, 14, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        forms = {"(a) 32 paths, summed": block.paths(x), "(b) concatenate": block.concat(x),
                 "(c) grouped conv": block.grouped(x)}
    return block, x, forms


def forms_agree(forms: dict[str, torch.Tensor]) -> Verdict:
    reference = forms["(c) grouped conv"]
    worst = max((out - reference).abs().max().item() for out in forms.values())
    return Verdict("the three forms compute the same function", 1e-4 / max(worst, TINY),
                   f"largest difference {worst:.0e} (float32 rounding; claim: under 1e-4)")


def median_ms(fn, repeats: int = 7) -> float:
    """Median wall time of `fn()` in milliseconds, after one warm-up call, without autograd."""
    times = []
    with torch.no_grad():
        fn()
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def time_forms(block: AggregatedTransform, x: torch.Tensor) -> dict[str, float]:
    return {"(a) 32 paths, summed": median_ms(lambda: block.paths(x)),
            "(b) concatenate": median_ms(lambda: block.concat(x)),
            "(c) grouped conv": median_ms(lambda: block.grouped(x))}


def grouped_is_faster(timings: dict[str, float]) -> Verdict:
    speedup = timings["(a) 32 paths, summed"] / timings["(c) grouped conv"]
    return Verdict("the grouped convolution is faster than the loop of paths", speedup / 1.5,
                   f"{speedup:.1f}x faster (claim: 1.5x)")


XIE_TABLE_3 = {(1, 64): 23.9, (2, 40): 23.0, (4, 24): 22.6, (8, 14): 22.3, (32, 4): 22.2}


def budget_variants() -> dict[tuple[int, int], tuple[int, int]]:
    """(C, d) -> (parameters, MACs at 224x224) of Xie et al.'s Table 2 variants of ResNet-50,
    built on the meta device (no memory, no init: only the shapes count)."""
    sizes = {}
    for c, d in XIE_TABLE_3:
        with torch.device("meta"):
            model = ResNet(ImageNetConfig("resnet50", groups=c, width_per_group=d))
        sizes[c, d] = complexity(model, (1, 3, 224, 224))
    return sizes


def same_budget(sizes: dict[tuple[int, int], tuple[int, int]]) -> Verdict:
    params = [p for p, _ in sizes.values()]
    spread = max(params) / min(params) - 1
    return Verdict("more paths at the same parameter budget", 0.05 / spread,
                   f"all five variants within {100 * spread:.1f}% of each other's parameters "
                   "(claim: 5%)")
