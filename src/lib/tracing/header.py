"""The `X-Amzn-Trace-Id` header: parse, validate, format (FR-010/011, FR-035).

The X-Ray trace id is the system's only correlation id, so every component that reads a trace
header goes through this one parser. Bad input is a typed error, never a silent guess.

Example:
    >>> header = TraceHeader.parse("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    >>> header.without_sampling().format()
    'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8'
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import dataclass, replace

TRACE_ID = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
ENTITY_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_HEADER_LENGTH = 256  # real headers are < 100 chars; anything longer is an attack or garbage


class InvalidTraceHeaderError(ValueError):
    """The header is not a well-formed X-Ray trace header."""


@dataclass(frozen=True)
class TraceHeader:
    """One parsed trace header. `sampled` is None when no decision was made upstream."""

    root: str
    parent: str | None = None
    sampled: bool | None = None

    @classmethod
    def parse(cls, value: str) -> TraceHeader:
        """Parse `Root=...;Parent=...;Sampled=...`; raise InvalidTraceHeaderError on anything else."""
        if len(value) > MAX_HEADER_LENGTH:
            raise InvalidTraceHeaderError(f"trace header longer than {MAX_HEADER_LENGTH} characters")
        fields: dict[str, str] = {}
        for part in value.strip().split(";"):
            if not part.strip():
                continue
            key, sep, field_value = part.partition("=")
            if not sep:
                raise InvalidTraceHeaderError(f"trace header field without '=': {part[:40]!r}")
            fields[key.strip()] = field_value.strip()
        root = fields.get("Root")
        if root is None or not TRACE_ID.match(root):
            raise InvalidTraceHeaderError("trace header Root must look like 1-<8 hex>-<24 hex>")
        parent = fields.get("Parent")
        if parent is not None and not ENTITY_ID.match(parent):
            raise InvalidTraceHeaderError("trace header Parent must be 16 lowercase hex characters")
        sampled_field = fields.get("Sampled")
        if sampled_field not in (None, "0", "1", "?"):
            raise InvalidTraceHeaderError("trace header Sampled must be 0, 1 or ?")
        sampled = None if sampled_field in (None, "?") else sampled_field == "1"
        return cls(root=root, parent=parent, sampled=sampled)

    @classmethod
    def new_root(cls, now: float | None = None) -> TraceHeader:
        """A fresh root with no parent and no sampling decision."""
        return cls(root=new_trace_id(now))

    def without_sampling(self) -> TraceHeader:
        """The edge rule of FR-035: keep Root/Parent for linkage, drop the client's decision."""
        return replace(self, sampled=None)

    def with_parent(self, parent: str, sampled: bool | None) -> TraceHeader:
        return replace(self, parent=parent, sampled=sampled)

    def format(self) -> str:
        parts = [f"Root={self.root}"]
        if self.parent is not None:
            parts.append(f"Parent={self.parent}")
        if self.sampled is not None:
            parts.append(f"Sampled={int(self.sampled)}")
        return ";".join(parts)


def new_trace_id(now: float | None = None) -> str:
    """An X-Ray trace id: version 1, epoch seconds in hex, 96 random bits."""
    epoch = int(time.time() if now is None else now)
    return f"1-{epoch:08x}-{secrets.token_hex(12)}"


def new_entity_id() -> str:
    """A 16-hex segment / subsegment id."""
    return secrets.token_hex(8)


def current_trace_id() -> str | None:
    """The Root of the invocation's `_X_AMZN_TRACE_ID` (set per invocation by Lambda), or None."""
    raw = os.environ.get("_X_AMZN_TRACE_ID")
    if not raw:
        return None
    return TraceHeader.parse(raw).root
