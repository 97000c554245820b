"""One home for the rules every module checks its arguments against.

A bad argument is refused before any tensor work starts, with a message that names the argument,
its value and what is allowed. The depth rules of the CIFAR nets live here too, so the builders,
the command line and the app all agree on which depths exist.
"""

from __future__ import annotations

SHORTCUTS = ("A", "B")           # He et al. 2015 §3.3: A = zero-padding, B = 1x1 projection
INITS = ("he", "default")        # kaiming-normal (He et al. 2015b) or PyTorch's own init
BLOCK_TYPES = ("basic", "bottleneck")
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}   # weight layers inside one block


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a ValueError naming the argument, its value and the allowed values."""
    if value not in allowed:
        choices = ", ".join(map(repr, allowed))
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {choices}")


def check_count(name: str, value: object, allow_none: bool = False) -> None:
    """Raise a ValueError unless `value` is a whole number >= 1 (or None, if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a whole number >= 1" + (" or None" if allow_none else "")
        raise ValueError(f"{name}={value!r} is not allowed; use {allowed}")


def check_positive(name: str, value: object, allow_none: bool = False) -> None:
    """Raise a ValueError unless `value` is a number > 0 (or None, if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name}={value!r} is not allowed; use a positive number"
                         + (" or None" if allow_none else ""))


def check_skip(skip: object) -> float:
    """Validate a skip gate: a number in [0, 1]."""
    if isinstance(skip, bool) or not isinstance(skip, (int, float)) or not 0.0 <= skip <= 1.0:
        raise ValueError(f"skip={skip!r} is not allowed; use a number in [0, 1] "
                         "(0 = plain block, 1 = residual block)")
    return float(skip)


def check_gates(skip: object, n_blocks: int) -> float | tuple[float, ...]:
    """Validate a config's `skip`: one gate for every block, or `n_blocks` gates, one per block
    in network order. Equal gates come back as the one number, so a config says it one way."""
    if not isinstance(skip, (list, tuple)):
        return check_skip(skip)
    if len(skip) != n_blocks:
        raise ValueError(f"skip={skip!r} is not allowed; give one gate for every block, or "
                         f"{n_blocks} gates (one per block, in network order)")
    gates = tuple(check_skip(g) for g in skip)
    return gates[0] if len(set(gates)) == 1 else gates


# ---------------------------------------------------------------------------------------------
# The depth of a CIFAR-style net (He et al. 2015 §4.2): a stem conv, three stages of n blocks,
# and the fc layer. Basic blocks give 6n+2 layers, bottleneck blocks 9n+2.


def depth_rule(block: str = "basic") -> str:
    """The rule in words, with examples: '6n+2 (8, 14, 20, ...)'."""
    check_choice("block", block, BLOCK_TYPES)
    return f"{3 * LAYERS_PER_BLOCK[block]}n+2 ({', '.join(map(str, depths(block)[:3]))}, ...)"


def depths(block: str = "basic", up_to: int = 110) -> tuple[int, ...]:
    """The allowed depths up to `up_to`: 8, 14, 20, ... (basic) or 11, 20, 29, ... (bottleneck)."""
    check_choice("block", block, BLOCK_TYPES)
    step = 3 * LAYERS_PER_BLOCK[block]
    return tuple(range(step + 2, up_to + 1, step))


def blocks_per_stage(depth: object, block: str = "basic") -> int:
    """n for a CIFAR net of `depth` layers; a ValueError naming the rule when there is none."""
    check_choice("block", block, BLOCK_TYPES)
    step = 3 * LAYERS_PER_BLOCK[block]
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < step + 2 or \
            (depth - 2) % step:
        raise ValueError(f"depth={depth!r} is not allowed for block={block!r}; "
                         f"use {depth_rule(block)}")
    return (depth - 2) // step
