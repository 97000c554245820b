"""The notes' last line, measured: "the default backbone for almost all computer vision tasks".
A backbone is a trained net reused, frozen, for a task it was not trained on. Train a ResNet on
half of the classes, freeze it, and fit only a linear classifier (a *linear probe*) on its
pooled features for the other half, classes it never saw; compare with the same probe on the
features of the same net at its random initial weights, and of a plain net trained the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nets.checks import check_count
from ...nets.devices import in_mode, to_device_of
from ...nets.models import ResNet, named_net
from ...training import data, train
from ...training.comparison import Compared, between, measured_setup, one_change
from ...training.evaluation import precise_bn
from ..settings import Settings
from ..verdicts import TINY, Verdict, claim

SEEN = 5            # the backbone trains on the first five classes; the probe gets the rest


def split_classes(images: data.Dataset, seen: int = SEEN) -> tuple[data.Dataset, data.Dataset]:
    """(the first `seen` classes, the others) of `images`, each labelled from 0 again."""
    if isinstance(seen, bool) or not isinstance(seen, int) or not 1 <= seen < len(images.classes):
        raise ValueError(f"seen={seen!r} is not allowed; use 1 to {len(images.classes) - 1}")

    def part(keep: range) -> data.Dataset:
        train_mask = (images.y_train >= keep.start) & (images.y_train < keep.stop)
        test_mask = (images.y_test >= keep.start) & (images.y_test < keep.stop)
        return data.Dataset(images.name, images.x_train[train_mask],
                            images.y_train[train_mask] - keep.start, images.x_test[test_mask],
                            images.y_test[test_mask] - keep.start, images.classes[keep.start:
                            keep.stop], images.mean, images.std)

    return part(range(seen)), part(range(seen, len(images.classes)))


@torch.no_grad()
def pooled_features(net: ResNet, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """The net's penultimate features (after global average pooling), in eval mode, on the
    CPU. Re-estimate its BatchNorm statistics first (`precise_bn`)."""
    with in_mode(net, training=False):
        return torch.cat([net.avgpool(net.features(*to_device_of(net, x[i:i + batch_size])))
                          .flatten(1).float().cpu() for i in range(0, len(x), batch_size)])


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, steps: int = 100, weight_decay: float = 1e-3) -> float:
    """Test error of a logistic regression (one linear layer, softmax, L2 `weight_decay`)
    fitted to (train_x, train_y) by full-batch L-BFGS on standardized features."""
    check_count("steps", steps)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    classes = int(train_y.max()) + 1
    w = torch.zeros(train_x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = F.cross_entropy(train_x @ w + b, train_y) + weight_decay * (w * w).sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        return ((test_x @ w + b).argmax(1) != test_y).float().mean().item()


def probe_errors(nets: dict[str, nn.Module], seen: data.Dataset, unseen: data.Dataset
                 ) -> dict[str, float]:
    """Each frozen net's linear-probe test error on the `unseen` classes. Every net's
    BatchNorm statistics are first re-estimated on the same `seen` training images."""
    errors = {}
    for name, net in nets.items():
        precise_bn(net, seen.x_train)
        errors[name] = linear_probe(pooled_features(net, unseen.x_train), unseen.y_train,
                                    pooled_features(net, unseen.x_test), unseen.y_test)
    return errors


def backbone_probes(s: Settings, images: data.Dataset, seed: int = 0, depth: int = 20
                    ) -> Compared:
    """A ResNet and a plain net of `depth` (one weights seed, skip 1 vs 0) trained side by side
    on the first `SEEN` classes, then frozen and probed on the others, against the ResNet at
    its initial weights: `values` {name: probe test error}, what changed between the trained
    ResNet and each of the other two, and the two trained nets' `runs`."""
    seen, unseen = split_classes(images)
    kw = dict(width=s.width, seed=seed, **seen.net_options)
    resnet, plain = f"ResNet-{depth}", f"plain-{depth}"
    trained = {f"{name}, trained": named_net(name, **kw) for name in (resnet, plain)}
    runs = train.compare(trained, seen, steps=s.steps, batch_size=s.batch_size,
                         recipe="quick", seed=seed, grad_every=0,
                         eval_every=s.steps)   # the probes read the nets, not their test curves
    random = named_net(resnet, **kw)
    untrained = measured_setup(random, **{**runs[f"{resnet}, trained"].setup, "steps": 0})
    changes = {f"{resnet}: trained vs random weights":
               one_change(runs[f"{resnet}, trained"].setup, untrained),
               f"{resnet} vs {plain}, both trained": between(*runs.values())}
    nets = {f"{resnet}, random weights": random, **trained}
    return Compared(probe_errors(nets, seen, unseen), changes, runs)


def probe(errors: dict[str, float], kind: str, state: str) -> tuple[str, float]:
    """The net ("ResNet-56") and probe error of `backbone_probes`' `kind` ("ResNet" or
    "plain") net in `state` ("trained" or "random weights")."""
    key = next(k for k in errors if k.startswith(kind) and k.endswith(state))
    return key.split(",")[0], errors[key]


@claim
def features_transfer(errors: dict[str, float]) -> Verdict:
    _, trained = probe(errors, "ResNet", "trained")
    _, random = probe(errors, "ResNet", "random weights")
    return Verdict("a trained ResNet's frozen features serve classes it never saw better than "
                   "its random initial ones (a linear probe on held-out classes)",
                   random / max(trained, TINY),
                   ", ".join(f"{k} {100 * v:.1f}%" for k, v in errors.items())
                   + " linear-probe test error on the unseen classes (claim: the trained "
                   "ResNet's below the random net's)")


DEEPER = 1.1    # "serve better": a probe error at least 10% below the other net's


@claim
def deep_backbones_need_skips(errors: dict[str, float]) -> Verdict:
    """`backbone_probes` at 56 layers, a depth at which plain nets train worse (Lessons 1 and
    2): what the skip buys a backbone is depth. One change between the two trained nets: the
    skip."""
    res_name, res = probe(errors, "ResNet", "trained")
    plain_name, plain = probe(errors, "plain", "trained")
    return Verdict("at 56 layers the trained ResNet's frozen features serve the unseen classes "
                   "better than the trained plain net's",
                   plain / max(res, TINY) / DEEPER,
                   f"linear-probe test error: {res_name} {100 * res:.1f}%, {plain_name} "
                   f"{100 * plain:.1f}% (claim: the plain net's at least {DEEPER:g}x the "
                   "ResNet's)")
