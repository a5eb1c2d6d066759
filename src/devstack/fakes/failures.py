"""One way for a fake to fail on cue: the next N requests (or every one until recovered) fail in a mode.

Example:
    >>> from enum import Enum
    >>> class Mode(Enum):
    ...     DOWN = "down"
    >>> failures: ScriptedFailures[str, Mode] = ScriptedFailures()
    >>> failures.fail("tiingo", Mode.DOWN, times=1)
    >>> failures.take("tiingo"), failures.take("tiingo")
    (<Mode.DOWN: 'down'>, None)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

Key = TypeVar("Key")
Mode = TypeVar("Mode")


@dataclass
class _Failure(Generic[Mode]):
    mode: Mode
    remaining: int | None  # None: until recover()


class ScriptedFailures(Generic[Key, Mode]):
    """Failures armed per key (a news source, or one key for a single-endpoint fake); thread-safe."""

    def __init__(self) -> None:
        self._armed: dict[Key, _Failure[Mode]] = {}
        self._lock = threading.Lock()

    def fail(self, key: Key, mode: Mode, times: int | None = None) -> None:
        """Fail the next `times` requests for `key` (None: every one until `recover`)."""
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for until recover()), got {times}")
        with self._lock:
            self._armed[key] = _Failure(mode, times)

    def recover(self, key: Key) -> None:
        with self._lock:
            self._armed.pop(key, None)

    def recover_all(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, key: Key) -> Mode | None:
        """The mode this request fails in (counting it against `times`), or None to answer normally."""
        with self._lock:
            failure = self._armed.get(key)
            if failure is None:
                return None
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    del self._armed[key]
            return failure.mode
