"""The local stack's console: one line per event (invocations, emails, SSE connections, steps).

Lines go to a text stream (stdout by default) under a lock, so threads never interleave a line.

Example:
    >>> import io
    >>> console = Console(stream=io.StringIO(), clock=lambda: 0.0)
    >>> console.event("invoke", "ingestion", trace="1-5759e988-bd862e3fe1be46a994272793", ms=812.0, outcome="ok")
    >>> console.stream.getvalue().split()[1:3]
    ['invoke', 'ingestion']
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO


class Console:
    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.time, quiet: bool = False):
        self.stream = stream or sys.stdout
        self._clock = clock
        self._lock = threading.Lock()
        self.quiet = quiet

    def event(self, kind: str, subject: str, *, trace: str | None = None, ms: float | None = None,
              outcome: str | None = None, detail: str = "") -> None:
        """`HH:MM:SS.mmm  kind  subject  trace  duration  outcome  detail`, columns aligned."""
        if self.quiet:
            return
        stamp = time.strftime("%H:%M:%S", time.localtime(self._clock())) + f".{int(self._clock() * 1000) % 1000:03d}"
        parts = [stamp, f"{kind:<7}", f"{subject:<14}", trace or "-".ljust(35)]
        if ms is not None:
            parts.append(f"{ms:>7.0f} ms")
        if outcome:
            parts.append(outcome)
        if detail:
            parts.append(detail)
        self.line("  ".join(parts))

    def line(self, text: str = "") -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()
