"""SSE frames and event ids (specs/contracts.md, "SSE").

Event ids are derived from the data, so a reconnect resumes on any execution environment
(FR-081). Analysed items are ordered by `(status_changed_at, item_id)`: that pair is a
`Position`, and a stream's cursor is the position up to which it has delivered everything.

- `sentiment_update` id: `<status_changed_at>/<item_id>`, the item's own position;
- `heartbeat`, `metrics`, `reconnect` ids: `<cursor>/<sequence>`, the stream's cursor and a
  per-stream counter (zero-padded), so ids are strictly increasing within a stream as strings too.

The item part of a cursor is `""` (before every item of that instant), 32 hex, or `~` (after
every item of that instant); timestamps are fixed-width ISO-8601 with milliseconds.

Example:
    >>> cursor = Position("2026-11-25T08:00:00.123Z", "")
    >>> parse_event_id(cursor.event_id(7)) == cursor
    True
    >>> frame("heartbeat", {"ts": "2026-11-25T08:00:00.123Z"}, "x/1", retry_ms=1000)
    b'retry: 1000\\nid: x/1\\nevent: heartbeat\\ndata: {"ts":"2026-11-25T08:00:00.123Z"}\\n\\n'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

TIMESTAMP = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"
BEFORE_ALL = ""
AFTER_ALL = "~"
SEQUENCE_DIGITS = 6
MAX_EVENT_ID_CHARS = 128
_EVENT_ID = re.compile(
    rf"^(?P<ts>{TIMESTAMP})/(?P<item>[0-9a-f]{{32}}|~|)(?:/(?P<sequence>\d{{{SEQUENCE_DIGITS},9}}))?$"
)

EVENT_TYPES = ("sentiment_update", "metrics", "heartbeat", "reconnect")


class InvalidEventIdError(ValueError):
    """A `Last-Event-ID` this server never issued."""


class Position(NamedTuple):
    """A place in the `(status_changed_at, item_id)` order of analysed items."""

    ts: str
    item: str

    def item_event_id(self) -> str:
        return f"{self.ts}/{self.item}"

    def event_id(self, sequence: int) -> str:
        return f"{self.ts}/{self.item}/{sequence:0{SEQUENCE_DIGITS}d}"


def parse_event_id(value: str) -> Position:
    """The cursor an event id stands for; InvalidEventIdError for anything this server never sent."""
    match = _EVENT_ID.match(value.strip()) if len(value) <= MAX_EVENT_ID_CHARS else None
    if match is None:
        raise InvalidEventIdError("Last-Event-ID is not an event id of this stream")
    return Position(match["ts"], match["item"])


def frame(event: str, data: Mapping[str, Any], event_id: str, retry_ms: int | None = None) -> bytes:
    """One SSE frame. `data` is one line of compact JSON (JSON escapes every newline)."""
    lines = [] if retry_ms is None else [f"retry: {retry_ms}"]
    lines += [f"id: {event_id}", f"event: {event}", f"data: {json.dumps(data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()
