"""Synthetic (canary) traffic: how a function tells the canary's probe from a user's request.

The canary's probe invocations carry `x-canary-probe` in their event's headers; the function then
annotates its handler subsegment `synthetic=true`, so X-Ray groups, filter expressions and
dashboards leave probe traces out with `!annotation.synthetic` (or select them with
`annotation.synthetic = true`). On the SSE function the header carries the canary's secret and
is checked (it shortens the stream); on the dashboard it is a mark only: whoever sends it hides
nothing but their own trace from the group's metrics.

Example:
    >>> probe_header({"X-Canary-Probe": "run-1"})
    'run-1'
    >>> probe_header({"accept": "*/*"}) is None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Tracer

from lib.tracing.powertools import annotate

PROBE_HEADER = "x-canary-probe"
SYNTHETIC_ANNOTATION = "synthetic"


def probe_header(headers: Mapping[str, Any] | None) -> str | None:
    """The probe header's value (header names are case-insensitive), or None."""
    for name, value in (headers or {}).items():
        if isinstance(name, str) and name.lower() == PROBE_HEADER and isinstance(value, str):
            return value
    return None


def mark_synthetic(tracer: Tracer) -> None:
    """Annotate the current subsegment as canary traffic."""
    annotate(tracer, **{SYNTHETIC_ANNOTATION: True})
