"""Helpers shared by the tests."""

from collections.abc import Callable, Iterable

import pytest


def assert_value_error_naming(call: Callable[[], object], words: Iterable[str]) -> None:
    """`call()` raises a ValueError whose message contains every one of `words` (the
    argument's name and value, and what is allowed)."""
    with pytest.raises(ValueError) as err:
        call()
    missing = [w for w in words if w not in str(err.value)]
    assert not missing, f"{missing} not in: {err.value}"
