"""`resnet-lab` on the command line: train one net, or compare plain and residual nets.

    resnet-lab compare --depths 20 56 --steps 300 --width 4 --size 16 --recipe constant \\
        --json runs/degradation.json --plot runs/degradation.png
    resnet-lab train --depth 20 --plain --max-seconds 30
    resnet-lab reproduce --dataset fashion_mnist --depths 20 56 --seeds 2 --steps 1000 \
        --out runs/fig6
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .grid import reproduce
from .grid import runs as grid_runs
from .nets.checks import INITS, blocks_per_stage, depth_rule
from .nets.models import named_net
from .nets.paper import HE2015_PLAIN_NOT_DRAWN
from .training import data as datasets
from .training.callbacks import ProgressBar
from .training.history import save_run
from .training.recipes import RECIPES, with_lr
from .training.train import compare


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line (naming it) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value
    parse.__name__ = kind.__name__
    return parse


def _cifar_depth(text: str) -> int:
    value = _positive(int)(text)
    try:
        blocks_per_stage(value, "basic")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value} is not {depth_rule('basic')}") from None
    return value


def _folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder")
    return Path(text)


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--dataset", choices=datasets.DATASETS, default="synthetic",
                        help="synthetic (built in, default), fashion_mnist or cifar10")
    common.add_argument("--data-root", type=_folder, help="folder with the dataset's files")
    common.add_argument("--size", type=_positive(int), help="resize images to SIZE x SIZE")
    common.add_argument("--n-train", type=_positive(int), help="use only this many train images")
    common.add_argument("--width", type=_positive(int), default=16,
                        help="channels of the first stage (the paper: 16)")
    common.add_argument("--no-norm", action="store_true", help="switch BatchNorm off")
    common.add_argument("--init", choices=INITS, default="he")
    budget = common.add_argument_group("budget (training ends at the first one reached)")
    budget.add_argument("--steps", type=_positive(int))
    budget.add_argument("--epochs", type=_positive(float))
    budget.add_argument("--max-seconds", type=_positive(float))
    common.add_argument("--batch-size", type=_positive(int), default=128)
    common.add_argument("--recipe", choices=tuple(RECIPES), default="quick")
    common.add_argument("--lr", type=_positive(float), help="peak learning rate")
    common.add_argument("--augment", action="store_true", help="random crop + flip")
    common.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--json", type=Path, help="write the histories here")
    common.add_argument("--plot", type=Path, help="write a PNG of the curves here")
    common.add_argument("--save", type=Path, help="save weights + histories (load_run reads it)")
    common.add_argument("--quiet", action="store_true", help="no progress bar")

    parser = Parser(prog="resnet-lab", description="Train plain and residual networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("train", parents=[common], help="train one network")
    one.add_argument("--depth", type=_cifar_depth, default=20, help=depth_rule("basic"))
    one.add_argument("--plain", action="store_true", help="skip connections off")
    many = sub.add_parser("compare", parents=[common],
                          help="train plain and residual nets side by side on the same batches")
    many.add_argument("--depths", type=_cifar_depth, nargs="+", default=[20, 56],
                      help=depth_rule("basic"))
    many.add_argument("--variants", nargs="+", choices=("plain", "residual"),
                      default=["plain", "residual"])
    add_reproduce(sub)
    return parser


def add_reproduce(sub) -> None:
    """`resnet-lab reproduce`: He et al.'s Fig. 6 / Table 6 grid (resnet_lab.grid.reproduce)."""
    grid = sub.add_parser(
        "reproduce", help="He et al.'s Fig. 6 / Table 6: plain vs residual nets over depth, "
        "resumable, on Ray with --ray", description=grid_runs.__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    grid.add_argument("--out", type=Path, required=True,
                      help="output folder; the same command again resumes there")
    default = grid_runs.Grid()
    grid.add_argument("--dataset", default=default.dataset, choices=("auto", *datasets.DATASETS),
                      help="auto (default): the first of " + ", ".join(datasets.BEST_FIRST)
                      + " that is in the data folder")
    grid.add_argument("--depths", type=_cifar_depth, nargs="+", default=list(default.depths),
                      help="the ResNets' depths, " + depth_rule("basic"))
    grid.add_argument("--plain-depths", type=_cifar_depth, nargs="*",
                      help="the plain nets' depths (default: those of --depths below "
                      f"{HE2015_PLAIN_NOT_DRAWN})")
    grid.add_argument("--seeds", type=_positive(int), default=default.seeds)
    grid.add_argument("--steps", type=_positive(int), default=default.steps)
    grid.add_argument("--width", type=_positive(int), default=default.width)
    grid.add_argument("--size", type=_positive(int), help="resize images to SIZE x SIZE")
    grid.add_argument("--n-train", type=_positive(int), help="use only this many train images")
    grid.add_argument("--batch-size", type=_positive(int), default=default.batch_size)
    grid.add_argument("--no-augment", action="store_true", help="no crop and flip")
    grid.add_argument("--threads", type=_positive(int),
                      help="CPU threads of a run in this process (default: torch's)")
    grid.add_argument("--checkpoint-minutes", type=_positive(float), default=5.0,
                      help="save an unfinished run this often (default 5)")
    grid.add_argument("--quiet", action="store_true", help="no progress bar")
    cluster = grid.add_argument_group("Ray (pip install 'resnet-lab[cluster]')")
    cluster.add_argument("--ray", action="store_true", help="each run as a Ray task")
    cluster.add_argument("--ray-address", default="auto",
                         help="auto (default: the running cluster, else a local one), local, "
                         "or an address")
    cluster.add_argument("--cpus-per-run", type=_positive(float), default=1.0)
    cluster.add_argument("--gpus-per-run", type=float, default=0.0,
                         help="fractional: 0.25 lets four runs share a GPU")


def run_reproduce(args: argparse.Namespace) -> int:
    grid = grid_runs.Grid(depths=tuple(args.depths), plain_depths=None if args.plain_depths is
                          None else tuple(args.plain_depths), seeds=args.seeds, steps=args.steps,
                          dataset=args.dataset, size=args.size, n_train=args.n_train,
                          width=args.width, batch_size=args.batch_size,
                          augment=not args.no_augment)
    try:
        path = reproduce.reproduce(grid, args.out, ray=args.ray, ray_address=args.ray_address,
                                   threads=args.threads, cpus_per_run=args.cpus_per_run,
                                   gpus_per_run=args.gpus_per_run,
                                   checkpoint_seconds=60 * args.checkpoint_minutes,
                                   quiet=args.quiet)
    except KeyboardInterrupt:
        print(f"resnet-lab: interrupted; finished runs are in {args.out}/runs. The same command "
              "again goes on from there (and from each unfinished run's last checkpoint).",
              file=sys.stderr)
        return 130
    print(f"report: {path} (and {path.with_suffix('.html')}, {path.parent / 'figure6.png'})")
    return 1 if any((args.out / "failed").glob("*.json")) else 0


def load_data(args: argparse.Namespace) -> datasets.Dataset:
    """The data set the arguments name, at their size and number of training images."""
    load_args = {"size": args.size} if args.size else {}
    if args.dataset == "synthetic":
        load_args.update(n_train=args.n_train or 20_000, seed=args.seed)
    else:
        load_args.update(n_train=args.n_train, root=args.data_root)
    return datasets.load(args.dataset, **load_args)


def train_nets(args: argparse.Namespace) -> dict:
    """`train` and `compare`: build the nets the arguments ask for, train them, report."""
    if args.steps is None and args.epochs is None and args.max_seconds is None:
        args.steps = 300
    data = load_data(args)
    if args.command == "train":
        names = [f"{'plain' if args.plain else 'ResNet'}-{args.depth}"]
    else:
        names = [f"{'ResNet' if v == 'residual' else v}-{d}" for d in args.depths
                 for v in args.variants]
    models = {name: named_net(name, width=args.width, norm=not args.no_norm, init=args.init,
                              seed=args.seed, **data.net_options) for name in names}
    recipe = with_lr(args.recipe, args.lr) if args.lr else args.recipe
    histories = compare(models, data, steps=args.steps, epochs=args.epochs,
                        max_seconds=args.max_seconds, batch_size=args.batch_size,
                        recipe=recipe, device=args.device, seed=args.seed,
                        augment=args.augment, callbacks=[] if args.quiet else [ProgressBar()])
    for name, h in histories.items():
        test = f"test error {100 * h.test_error[-1]:.1f}%" if h.test_error else "no test yet"
        print(f"{name:>12}: {h.status:<8} {len(h.step)} steps, final train loss "
              f"{h.final_train_loss():.3f}, {test}. {h.message}".rstrip())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({n: h.to_dict() for n, h in histories.items()}))
    if args.plot:
        from .pictures.plots import plot_curves
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        steps = max(len(h.step) for h in histories.values())
        title = f"{data.name}, {recipe if isinstance(recipe, str) else recipe.name} recipe, " \
                f"{steps} steps"
        plot_curves(histories, title=title).savefig(args.plot, dpi=110)
    if args.save:
        save_run(args.save, models, histories)
    return histories


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "reproduce":
            return run_reproduce(args)
        histories = train_nets(args)
    except (ValueError, RuntimeError, FileNotFoundError) as err:
        print(f"resnet-lab: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    return 1 if any(h.status == "diverged" for h in histories.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
