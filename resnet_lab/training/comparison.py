"""One variable per comparison: what two runs (or two measured nets) share and what differs
between them, read from their setups, never typed by hand.

A setup is a plain dictionary: a trained model's `History.setup` (its config's fields, whether
it was plain, the recipe, batch size, data seed, steps, data, how BatchNorm was evaluated, the
engine), or, for a net measured without training, `measured_setup(model, ...)`: its config's
fields and the measurement's own settings. `one_change(a, b)` compares two setups field by
field and says whether the two nets started from the very same weights, by building both from
their configs and comparing every tensor: "the same seed" is not enough, since nets of a
different shape draw different weights from it.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, field, fields

import torch
from torch import nn

from ..nets.configs import KINDS, config_from_dict, config_to_dict
from ..nets.models import build, config_of, is_plain
from .history import History
from .recipes import Recipe, base_name

LABELS = {   # setup fields that are not the net's own, in the words a lesson uses
    "seed": "data seed", "batch_size": "batch size", "recipe": "lr schedule",
    "steps": "steps", "data": "data", "eval_bn": "BatchNorm at evaluation", "engine": "step engine",
    "inputs_seed": "inputs' seed",
}
WORDS = {   # net config fields the lecture names otherwise (a changed one also shows its name)
    "num_classes": "classes", "in_channels": "input channels", "shortcut": "shortcut type",
    "norm": "normalization", "preact": "block order",
    "zero_init_residual": "init of each branch's last BN", "groups": "cardinality C",
    "width_per_group": "group width d", "block": "block type", "branch_scale": "branch scale",
    "in_features": "inputs", "out_features": "outputs", "hidden": "hidden layers",
}
DERIVED = ("plain", "weights_seed")   # follow from other fields: never a change of their own
ALSO = {   # what else a change of one of the net's fields changes, said beside it
    "norm": "BatchNorm after each conv, in place of the conv's bias",
    "preact": "BN and ReLU before each conv, and a final BN in place of the stem's",
    "groups": "the 3×3 conv split into C groups",
    "width_per_group": "each group's channels in Xie et al.'s template; a net of another "
                       "width scales them",
    "block": "basic: two 3×3 convs; bottleneck: 1×1, 3×3, 1×1",
    "init": "he: convs' weights drawn with std √(2 / fan-out), an MLP's with √(2 / fan-in) "
            "and zero biases",
    "branch_scale": "a fixed factor on F(x) in every block",
}


def measured_setup(model: nn.Module, **settings) -> dict:
    """The setup of a net measured without training: its config's fields (its weights seed
    as "weights_seed"), whether it is plain, and the measurement's `settings` (e.g. the
    inputs, steps and optimizer of a fit)."""
    config = config_of(model)
    if config is None:
        raise ValueError(f"model={type(model).__name__} is not allowed; give a lab model "
                         "(cifar_resnet, an ImageNet builder, deep_mlp): its config is compared")
    net = config_to_dict(config)
    net["weights_seed"] = net.pop("seed")
    return {**net, "plain": is_plain(model), **settings}


def net_fields(setup: dict) -> list[str]:
    """The setup's fields that belong to the net's config (its weights seed aside)."""
    kind = KINDS.get(setup.get("builder"))
    return [] if kind is None else [f.name for f in fields(kind) if f.name != "seed"]


def initial_weights(setup: dict) -> dict[str, torch.Tensor] | None:
    """The net's initial parameters, rebuilt from its config and weights seed (None when it
    had no seed: then its weights came from the global generator and cannot be rebuilt)."""
    if setup.get("weights_seed") is None or not net_fields(setup):
        return None
    config = {k: setup[k] for k in ("builder", *net_fields(setup)) if k in setup}  # else default
    return dict(build(config_from_dict({**config, "seed": setup["weights_seed"]}))
                .named_parameters())


def equal_tensors(a: dict[str, torch.Tensor] | None, b: dict[str, torch.Tensor] | None
                  ) -> tuple[int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """How many of two nets' parameters are equal (the same name, shape and values), and the
    names of the others: those in both nets that differ, those in `a` only, those in `b`
    only; (0, (), (), ()) when either is unknown."""
    if a is None or b is None:
        return 0, (), (), ()
    both = [k for k in a if k in b]
    differ = tuple(k for k in both if a[k].shape != b[k].shape or not torch.equal(a[k], b[k]))
    return (len(both) - len(differ), differ, tuple(k for k in a if k not in b),
            tuple(k for k in b if k not in a))


def first_names(names: tuple[str, ...], shown: int = 4) -> str:
    """The names, as their modules ("layer1.0.bn1" for its weight and bias), in brackets when
    there are at most `shown` of them; "" for more, where a list would not be read."""
    modules = tuple(dict.fromkeys(name.rsplit(".", 1)[0] for name in names))
    return f" (in {', '.join(modules)})" if len(modules) <= shown else ""


def short(value: object) -> str:
    """A setup value as the line shows it: a recipe by its name and lr, 1.0 as 1."""
    if isinstance(value, dict) and "name" in value:       # a recipe: its name and schedule
        name, schedule = base_name(value["name"]), value.get("schedule", "")
        schedule = {"onecycle": "one-cycle", "step": "steps ÷10"}.get(schedule, schedule)
        kind = "" if schedule in ("", name) else f"{schedule}, "
        return f"{name}: {kind}lr {value['lr']:g}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def changed_field(field: str) -> str:
    """How a changed field opens its part of the line: "skip (", or in the lecture's words
    with the field's name, the argument to change: "group width d (width_per_group: "."""
    words = WORDS.get(field, LABELS.get(field, field))
    return f"{field} (" if words == field else f"{words} ({field}: "


@dataclass(frozen=True)
class Comparison:
    """What two setups share and what differs. `changed`: field -> (a's value, b's value);
    `same`: field -> the shared value; `tensors`: how many initial parameter tensors are
    equal in the two nets, and the names of those that differ, of those in the first net only
    and of those in the second only; `weights_seed`: the seed both were drawn from (None when
    it differs)."""

    changed: dict[str, tuple]
    same: dict[str, object]
    tensors: tuple[int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]
    weights_seed: int | None
    net: tuple[str, ...] = ()     # the fields that belong to the net's config
    title: str = ""               # "a vs b": the line's heading, when the pair has names

    @property
    def same_weights(self) -> bool:
        """Whether the two nets started from the very same tensors, every one of them."""
        equal, *others = self.tensors
        return equal > 0 and not any(others)

    def weights(self) -> str:
        """Where the two nets' initial weights came from, and how many tensors are equal."""
        equal, differ, only_a, only_b = self.tensors
        if self.weights_seed is None:
            return "drawn separately (no shared seed)"
        if self.same_weights:
            return f"seed {self.weights_seed} for both: all {equal} tensors start equal"
        parts = [f"{equal} equal"]
        if differ:
            parts.append(f"{len(differ)} different{first_names(differ)}")
        for only, net in ((only_a, "first"), (only_b, "second")):
            if only:
                parts.append(f"{len(only)} in the {net} net only{first_names(only)}")
        return f"seed {self.weights_seed} for both; not every tensor starts equal: " \
               f"{', '.join(parts)}"

    def lines(self) -> list[str]:
        """Three lines: what changed, what stayed the same, where the weights came from."""
        changed = ", ".join(f"{changed_field(k)}{short(a)} → {short(b)}"
                            + (f"; {ALSO[k]}" if k in ALSO else "") + ")"
                            for k, (a, b) in self.changed.items())
        net = [k for k in self.same if k in self.net]
        same = [f"{LABELS.get(k, k)} ({short(v)})" for k, v in self.same.items()
                if k not in self.net and k != "builder"]
        if net:
            same.insert(0, f"the rest of the net ({len(net)} other config fields)")
        return [f"changed:  {changed or 'nothing'}", f"the same: {', '.join(same)}",
                f"weights:  {self.weights()}"]

    def titled(self, title: str) -> str:
        """The lines under a heading: "plain-20 vs plain-56:", then each line indented."""
        return "\n".join([f"{title}:", *(f"  {line}" for line in self.lines())])

    def __str__(self) -> str:
        return self.titled(self.title) if self.title else "\n".join(self.lines())


def as_saved(value):
    """A setup's value as a JSON file keeps it (tuples become lists), so that a setup read
    back from a file compares equal to the same setup in memory."""
    return json.loads(json.dumps(value))


# a recipe saved before one of its fields existed trained as that field's default says
RECIPE_DEFAULTS = {f.name: f.default for f in fields(Recipe) if f.default is not MISSING}


def compared_value(key: str, value):
    """A setup's value as `one_change` compares it: `as_saved`, a recipe with its defaults."""
    if key == "recipe" and isinstance(value, dict):
        value = {**RECIPE_DEFAULTS, **value}
    return as_saved(value)


def one_change(a: dict, b: dict, title: str = "") -> Comparison:
    """Compare two setups (`History.setup` or `measured_setup`) field by field; `title`
    names the pair ("ResNet-56 vs plain-56")."""
    keys = [k for k in dict.fromkeys([*a, *b]) if k not in DERIVED]
    changed = {k: (a.get(k), b.get(k)) for k in keys
               if compared_value(k, a.get(k)) != compared_value(k, b.get(k))}
    same = {k: a.get(k) for k in keys if k not in changed}
    seed = a.get("weights_seed") if a.get("weights_seed") == b.get("weights_seed") else None
    return Comparison(changed, same, equal_tensors(initial_weights(a), initial_weights(b)),
                      seed, tuple(dict.fromkeys(net_fields(a) + net_fields(b))), title)


@dataclass(frozen=True)
class Compared:
    """An experiment's numbers (`values`, what its verdict reads) and, for each pair of nets
    it compares, what changed between them: `changes`, {"a vs b": Comparison}; `runs`: the
    histories of the nets it trained, where a lesson reads them too (their training loss)."""

    values: dict
    changes: dict[str, Comparison]
    runs: dict[str, History] = field(default_factory=dict)

    def what_changed(self) -> str:
        """Each compared pair's lines (`Comparison.lines`) under its "a vs b:" heading."""
        return "\n".join(change.titled(pair) for pair, change in self.changes.items())


def between(a: History, b: History) -> Comparison:
    """The comparison of two trained models by their histories: `between(runs["ResNet-56"],
    runs["plain-56"])`."""
    return one_change(a.setup, b.setup, f"{a.name} vs {b.name}")
