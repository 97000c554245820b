"""Lesson 4, ResNeXt: the three equivalent forms, the grouped convolution's speed, more
paths at the same parameter budget, and a small ResNeXt against a ResNet of its budget,
trained over several seeds."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ...instruments.cost import complexity
from ...nets.cardinality import AggregatedTransform
from ...nets.configs import ImageNetConfig
from ...nets.init import build_seeded, initialize
from ...nets.models import ResNet, cifar_resnet
from ...nets.paper import XIE2017_TABLE2, XIE2017_TABLE3
from ...training import data, train
from ...training.comparison import Compared, between, one_change
from ...training.evaluation import mistakes
from ...training.history import History
from ..settings import Settings
from ..verdicts import TINY, Verdict, claim


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


@claim
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


@claim
def grouped_is_faster(timings: dict[str, float]) -> Verdict:
    speedup = timings["(a) 32 paths, summed"] / timings["(c) grouped conv"]
    return Verdict("the grouped convolution is faster than the loop of paths", speedup / 1.5,
                   f"{speedup:.1f}x faster (claim: 1.5x)")


def budget_variants() -> dict[tuple[int, int], tuple[int, int]]:
    """(C, d) -> (parameters, MACs at 224x224) of Xie et al.'s Table 2 variants of ResNet-50,
    built on the meta device (no memory, no init: only the shapes count)."""
    sizes = {}
    for c, d in XIE2017_TABLE2:
        with torch.device("meta"):
            model = ResNet(ImageNetConfig("resnet50", groups=c, width_per_group=d))
        sizes[c, d] = complexity(model, (1, 3, 224, 224))
    return sizes


@claim
def same_budget(sizes: dict[tuple[int, int], tuple[int, int]]) -> Verdict:
    """Xie et al.'s Table 2 keeps the budget roughly the same: parameters and computation."""
    params, macs = ([size[i] for size in sizes.values()] for i in (0, 1))
    spread = {what: max(v) / min(v) - 1 for what, v in (("parameters", params), ("MACs", macs))}
    return Verdict("more paths at (almost) the same budget, in parameters and in computation",
                   0.10 / max(spread.values()),
                   f"all {len(sizes)} variants within {100 * spread['parameters']:.1f}% of each "
                   f"other's parameters and {100 * spread['MACs']:.1f}% of each other's MACs "
                   "(claim: each within 10%)")


# Two of Xie et al.'s Table 2 templates (C, d), every channel count shrunk by 64 / LAB_WIDTH:
# (1, 64) is a dense 3x3 of 8 channels in stage 1, (4, 24) four groups of 3; the budget stays
# the same, as in Table 2 (C = 32 would leave a path less than one channel).
LAB_PAIR = {"ResNet (C = 1, template d = 64)": (1, 64),
            "ResNeXt (C = 4, template d = 24)": (4, 24)}
LAB_WIDTH, LAB_DEPTH = 8, 11    # a bottleneck net of one block per stage, stages of 8/16/32


def lab_pair(in_channels: int, num_classes: int, seed: int = 0) -> dict[str, ResNet]:
    """A small bottleneck ResNet and its ResNeXt twin (`LAB_PAIR`), from one weights seed."""
    return {name: cifar_resnet(LAB_DEPTH, block="bottleneck", width=LAB_WIDTH, groups=c,
                               width_per_group=d, in_channels=in_channels,
                               num_classes=num_classes, seed=seed)
            for name, (c, d) in LAB_PAIR.items()}


def lab_budget(nets: dict[str, ResNet], shape: tuple[int, ...]) -> dict[tuple[int, int],
                                                                        tuple[int, int]]:
    """(C, d) -> (parameters, MACs) of the lab pair, the form `same_budget` reads."""
    return {LAB_PAIR[name]: complexity(net, shape) for name, net in nets.items()}


def train_lab_pair(s: Settings, images: data.Dataset, seed: int, steps: int,
                   eval_samples: int | None = 2000) -> tuple[dict[str, ResNet], dict[str, History]]:
    """The lab pair of weights seed `seed`, trained side by side for `steps` steps on the same
    batches (data seed `seed`) and tested at the end on `eval_samples` test images (None: all)."""
    nets = lab_pair(**images.net_options, seed=seed)
    runs = train.compare(nets, images, steps=steps, batch_size=s.batch_size, recipe="quick",
                         seed=seed, grad_every=0, eval_every=steps, eval_samples=eval_samples)
    return nets, runs


def cardinality_runs(s: Settings, images: data.Dataset, seeds: Sequence[int] = (0, 1, 2),
                     steps: int | None = None) -> Compared:
    """The lab pair trained side by side, `steps` steps (default: half the lesson's) on the
    same batches, once per seed: `values` {name: test error of each seed's run}, and what
    changed between the two nets; `runs`, the first seed's histories."""
    steps = steps or s.steps // 2
    errors: dict[str, list[float]] = {name: [] for name in LAB_PAIR}
    first: dict[str, History] = {}
    for seed in seeds:
        _, runs = train_lab_pair(s, images, seed, steps)
        for name, h in runs.items():
            errors[name].append(h.test_error[-1])
        first = first or runs
    return Compared(errors, {" vs ".join(first): between(*first.values())}, first)


# Student's t at 97.5 %, by degrees of freedom 1-10: the half-width of a 95 % interval of a
# mean is this times the standard error
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
Z_975 = 1.96   # the same for a mean over many test images (a normal distribution)


class Paired(NamedTuple):
    """ResNeXt's test error minus ResNet's, seed by seed, in points (a seed's two nets train on
    the same batches), and the 95 % interval of their mean: its half-width for the luck of
    the seeds, and, where the images each net got wrong are known, for the luck of the test
    images (`images_half`, 0 where unknown); the interval adds the two."""

    gaps: np.ndarray
    mean: float
    seeds_half: float
    images_half: float

    @property
    def low(self) -> float:
        return self.mean - self.seeds_half - self.images_half

    @property
    def high(self) -> float:
        return self.mean + self.seeds_half + self.images_half


def paired_gaps(errors: dict[str, list[float]], wrong: dict[str, np.ndarray] | None = None
                ) -> Paired:
    """The lab pair's errors {name: one per seed}, read seed by seed (`Paired`). `wrong`
    {name: bool array, seeds x test images}: which images each seed's net got wrong."""
    (_, res), (_, nxt) = errors.items()
    gaps = 100 * (np.array(nxt) - np.array(res))
    if not 2 <= len(gaps) <= len(T_975) + 1:
        raise ValueError(f"errors: 2 to {len(T_975) + 1} seeds per net for a 95 % interval, "
                         f"got {len(gaps)}")
    seeds_half = T_975[len(gaps) - 2] * gaps.std(ddof=1) / np.sqrt(len(gaps))
    images_half = 0.0
    if wrong is not None:      # per image: ResNeXt's mistakes minus ResNet's, over the seeds
        (_, res_wrong), (_, nxt_wrong) = wrong.items()
        per_image = 100 * (nxt_wrong.astype(float) - res_wrong.astype(float)).mean(axis=0)
        images_half = Z_975 * per_image.std(ddof=1) / np.sqrt(len(per_image))
    return Paired(gaps, float(gaps.mean()), float(seeds_half), float(images_half))


def seed_by_seed(errors: dict[str, list[float]], wrong: dict[str, np.ndarray] | None = None
                 ) -> str:
    """ResNeXt's test error minus ResNet's, seed by seed: each difference, their mean and its
    95 % interval, and on how many seeds ResNeXt's was the lower."""
    p = paired_gaps(errors, wrong)
    parts = (f" (seeds ±{p.seeds_half:.2f}, test images ±{p.images_half:.2f})"
             if wrong is not None else " (seeds only)")
    return (f"ResNeXt's test error minus ResNet's, seed by seed: "
            f"{', '.join(f'{g:+.2f}' for g in p.gaps)} points; mean {p.mean:+.2f}, 95% "
            f"interval {p.low:+.2f} to {p.high:+.2f}{parts}; ResNeXt's is the lower on "
            f"{int((p.gaps < 0).sum())} of {len(p.gaps)} seeds")


class Reference(NamedTuple):
    """A longer run of the lab pair (`write_reference`): {name: test error per seed}, one line
    on how it was trained, the first seed's setups {name: `History.setup`}, and {name: which
    test images each seed's net got wrong (seeds x images)}."""

    errors: dict[str, list[float]]
    how: str
    setups: dict[str, dict]
    wrong: dict[str, np.ndarray]


def packed(wrong: torch.Tensor) -> str:
    """A bool per image as text: its bits, packed, in base64."""
    return base64.b64encode(np.packbits(wrong.numpy())).decode()


def unpacked(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), np.uint8))[:n].astype(bool)


def write_reference(folder: str | Path, s: Settings, images: data.Dataset,
                    seeds: Sequence[int], steps: int) -> None:
    """The lab pair trained longer, one file per seed (`seed<N>.json`), tested on the whole
    test set: each net's error and which images it got wrong. A run stopped halfway keeps the
    seeds it finished, and two processes can share the seeds."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        start = time.perf_counter()
        nets, runs = train_lab_pair(s, images, seed, steps, eval_samples=None)
        wrong = {name: mistakes(net, images.x_test, images.y_test, bn_from=images.x_train)
                 for name, net in nets.items()}
        (folder / f"seed{seed}.json").write_text(json.dumps({
            "seed": seed, "steps": steps, "batch_size": s.batch_size, "data": images.name,
            "n_train": len(images.x_train), "n_test": len(images.x_test),
            "size": images.shape[-1],
            "errors": {name: h.test_error[-1] for name, h in runs.items()},
            "wrong": {name: packed(w) for name, w in wrong.items()},
            "setups": {name: h.setup for name, h in runs.items()},
            "seconds": round(time.perf_counter() - start, 1),
            "threads": torch.get_num_threads(), "torch": torch.__version__}, indent=1))


def load_reference(folder: str | Path) -> Reference:
    """The seeds `write_reference` wrote to `folder`, in seed order."""
    rows = sorted((json.loads(p.read_text()) for p in Path(folder).glob("seed*.json")),
                  key=lambda row: row["seed"])
    if not rows:
        raise FileNotFoundError(f"no seed*.json in {folder}: write it with "
                                "scripts/resnext_reference.py")
    first = rows[0]
    how = (f"{len(rows)} seeds ({first['seed']}-{rows[-1]['seed']}), {first['steps']:,} "
           f"steps at batch {first['batch_size']} on {first['data']} "
           f"({first['n_train']:,} training images, {first['size']}x{first['size']}; tested on "
           f"all {first['n_test']:,} test images), "
           f"{sum(row['seconds'] for row in rows) / 60:.0f} min of CPU training with "
           f"{first['threads']} thread(s), torch {first['torch']}")
    return Reference({name: [row["errors"][name] for row in rows] for name in LAB_PAIR}, how,
                     first["setups"],
                     {name: np.stack([unpacked(row["wrong"][name], row["n_test"]) for row in rows])
                      for name in LAB_PAIR})


def against_reference(lesson: Compared, reference: Reference) -> str:
    """What changed between a lesson's `cardinality_runs` and the reference run, net by net:
    the first seed's setups, compared by `one_change`."""
    return "\n".join(one_change(lesson.runs[name].setup, reference.setups[name])
                     .titled(f"{name}: this lesson vs the longer run") for name in LAB_PAIR)


# The lab pair's templates (LAB_PAIR): the 4 x 24d ResNeXt-50's top-1 error below ResNet-50's
# in Xie et al.'s Table 3 (22.6 % against 23.9 %), as a share of ResNet-50's
XIE_GAIN = 1 - XIE2017_TABLE3[4, 24] / XIE2017_TABLE3[1, 64]


@claim
def resnext_keeps_up(reference: Reference) -> Verdict:
    """Read on many seeds and the whole test set (the reference run): the paired gap's 95 %
    interval, for the luck of the seeds and of the test images, rules out ResNeXt being worse
    than ResNet by as large a share of ResNet's error as Xie et al.'s ResNeXt gained over
    ResNet-50 with the same template. Whether ResNeXt gains here, it does not claim."""
    p = paired_gaps(reference.errors, reference.wrong)
    bound = 100 * XIE_GAIN * np.mean(next(iter(reference.errors.values())))
    return Verdict("at the lab's size ResNeXt (template 4 x 24d) keeps up with ResNet (1 x 64d): "
                   "a loss as large as Xie et al.'s gain for this template is ruled out",
                   bound / max(p.high, TINY),
                   f"ResNeXt's test error minus ResNet's over {len(p.gaps)} seeds and "
                   f"{reference.wrong[next(iter(reference.wrong))].shape[1]:,} test images, "
                   f"paired: mean {p.mean:+.2f}, 95% interval {p.low:+.2f} to {p.high:+.2f} "
                   f"points (claim: the interval's upper end under +{bound:.2f} points, "
                   f"{100 * XIE_GAIN:.1f}% of ResNet's error, the share Xie et al.'s 4 x 24d "
                   "ResNeXt-50 took off ResNet-50's)")
