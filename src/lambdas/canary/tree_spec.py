"""The trace tree each end-to-end probe must find in X-Ray: the one place that says what "complete" is.

Each `Part` names a kind of document, the part it must hang under, and what its absence means (the
alert names it: "handler subsegment missing: daemon or IAM"). Who writes what, in AWS:
- `AWS::Lambda` and `AWS::Lambda::Function`: the Lambda service itself, for an invocation it sampled
  (https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html): their absence means the trace
  header was not honoured or the function's tracing is not Active, not our pipeline;
- `## lambda_handler` and the AWS call subsegments: the X-Ray SDK (Powertools Tracer) in the
  function, through the X-Ray daemon Lambda runs beside it, with the function role's
  `xray:PutTraceSegments`: their absence means the daemon or the role;
- the SSE stream's spans: the OTel SDK through the ADOT collector extension's OTLP receiver and
  its `awsxray` exporter: their absence means the collector or its exporter (endpoint, region).

Example:
    >>> evaluate(BATCH_TREE, []).outcome
    <Outcome.LOST: 'lost'>
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Part:
    """One expected document: matched on `origin`, exact `name`, `name_prefix` and/or `namespace`."""

    label: str
    blame: str  # what a missing part points at, as the alert says it
    under: str | None = None  # the label of the part it must descend from
    origin: str | None = None
    name: str | None = None
    name_prefix: str | None = None
    namespace: str | None = None

    def matches(self, document: dict[str, Any]) -> bool:
        name = str(document.get("name", ""))
        return ((self.origin is None or document.get("origin") == self.origin)
                and (self.name is None or name == self.name)
                and (self.name_prefix is None or name.startswith(self.name_prefix))
                and (self.namespace is None or document.get("namespace") == self.namespace))


@dataclass(frozen=True)
class TreeSpec:
    path: str  # the probe's path, a metric dimension: "batch" or "stream"
    parts: tuple[Part, ...]


FACADE_BLAME = "Lambda did not trace the invocation (trace header not honoured, or tracing not Active)"
_FACADE = (
    Part("AWS::Lambda segment", FACADE_BLAME, origin="AWS::Lambda"),
    Part("AWS::Lambda::Function segment", FACADE_BLAME, under="AWS::Lambda segment", origin="AWS::Lambda::Function"),
    Part("handler subsegment", "daemon or IAM", under="AWS::Lambda::Function segment", name="## lambda_handler"),
)

# The dashboard's `GET /api/v2/tickers`: a read of the config table under the handler.
BATCH_TREE = TreeSpec("batch", (
    *_FACADE,
    Part("AWS call subsegment", "botocore not patched, or daemon", under="handler subsegment", namespace="aws"),
))

# The SSE function's short probe stream: the handler phase (X-Ray SDK), then the stream's OTel spans.
STREAM_TREE = TreeSpec("stream", (
    *_FACADE,
    Part("SSE spans", "collector or exporter", under="AWS::Lambda::Function segment", name="sse.global_stream"),
    Part("SSE poll span", "collector or exporter", under="SSE spans", name="sse.poll"),
))


class Outcome(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"  # some of the tree arrived: degraded
    LOST = "lost"  # nothing of the probe's trace arrived


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    missing: tuple[str, ...]  # "handler subsegment missing: daemon or IAM", ...
    documents: int


def flatten(document: dict[str, Any], parent_id: str | None = None) -> Iterator[dict[str, Any]]:
    """A document and every subsegment embedded in it, each with its `parent_id` (X-Ray nests them on read)."""
    entry = {key: value for key, value in document.items() if key != "subsegments"}
    if parent_id is not None:
        entry["parent_id"] = parent_id
    yield entry
    for child in document.get("subsegments", []) or []:
        yield from flatten(child, str(document.get("id")))


def evaluate(spec: TreeSpec, documents: list[dict[str, Any]]) -> Verdict:
    """Which parts of `spec` the trace's documents (as BatchGetTraces returns them) hold.

    A part whose `under` part is missing is not judged: its absence follows from the other.
    """
    flat = [entry for document in documents for entry in flatten(document)]
    if not flat:
        return Verdict(Outcome.LOST, (f"trace lost, no document arrived: {spec.parts[0].blame}",), 0)
    by_id = {str(entry.get("id")): entry for entry in flat}

    def ancestors(entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        parent = entry.get("parent_id")
        while isinstance(parent, str) and parent in by_id and parent not in seen:
            seen.add(parent)
            yield by_id[parent]
            parent = by_id[parent].get("parent_id")

    found: dict[str, list[dict[str, Any]]] = {}
    missing: list[str] = []
    for part in spec.parts:
        if part.under is not None and part.under not in found:
            continue
        candidates = [entry for entry in flat if part.matches(entry)]
        if part.under is not None:
            parents = {id(doc) for doc in found[part.under]}
            placed = [entry for entry in candidates if any(id(a) in parents for a in ancestors(entry))]
            if candidates and not placed:
                missing.append(f"{part.label} not under the {part.under}: {part.blame}")
                continue
            candidates = placed
        if candidates:
            found[part.label] = candidates
        else:
            missing.append(f"{part.label} missing: {part.blame}")
    return Verdict(Outcome.PARTIAL if missing else Outcome.COMPLETE, tuple(missing), len(flat))
