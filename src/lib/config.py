"""A function's settings come from the environment stack.json gives it; a missing or garbled one
fails the invocation with one clear error.

Example:
    >>> require_env(("NEWS_TABLE",), {"NEWS_TABLE": "news"})
    {'NEWS_TABLE': 'news'}
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping


class ConfigurationError(RuntimeError):
    """The function's environment (or a secret) is not what the stack map promises: fail loudly."""


def require_env(names: Iterable[str], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The named variables' values; one ConfigurationError naming every one that is unset or empty."""
    source = os.environ if env is None else env
    names = tuple(names)
    missing = [name for name in names if not source.get(name)]
    if missing:
        raise ConfigurationError(f"environment variables not set: {', '.join(missing)}")
    return {name: source[name] for name in names}


def env_number(name: str, raw: str, low: float = -math.inf, high: float = math.inf) -> float:
    """`raw` (the value of `name`) as a finite number within [low, high]."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigurationError(f"{name}={raw!r} must be between {low} and {high}")
    return value
