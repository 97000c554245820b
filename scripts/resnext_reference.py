"""Lesson 4's ResNeXt-vs-ResNet comparison (`experiments.cardinality_runs`) as a longer
reference run: the same two nets, data and recipe, more steps and more seeds. One file per
seed in docs/resnext/, which the lesson reads (`experiments.load_reference`).

    python scripts/resnext_reference.py --seeds 0 1 2 3 --steps 1500

Two processes with different seeds share a 2-core machine: one thread each.
"""

import argparse
from pathlib import Path

import torch

from resnet_lab import lessons
from resnet_lab.lessons import experiments

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--seeds", type=int, nargs="+", required=True)
parser.add_argument("--steps", type=int, required=True)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "resnext")
args = parser.parse_args()
torch.set_num_threads(args.threads)
settings = lessons.settings("quick")     # lesson 4's data and batch size in quick mode
experiments.write_reference(args.out, settings, lessons.degradation_data(settings),
                            args.seeds, args.steps)
reference = experiments.load_reference(args.out)
print(experiments.seed_by_seed(reference.errors, reference.wrong))
