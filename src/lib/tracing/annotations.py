"""Annotation rules shared by both tracers: X-Ray indexes annotations, so their keys are checked.

Keys must match `^[a-zA-Z0-9_]{1,500}$` (no dots) and a subsegment holds at most 50.

Example:
    >>> validate_annotations({"latency_ms": 12, "is_cold_start": False})
    {'latency_ms': 12, 'is_cold_start': False}
"""

from __future__ import annotations

import re
from collections.abc import Mapping

ANNOTATION_KEY = re.compile(r"^[a-zA-Z0-9_]{1,500}$")
MAX_ANNOTATIONS_PER_SUBSEGMENT = 50
MAX_ANNOTATION_VALUE_CHARS = 1000

AnnotationValue = str | int | float | bool


class InvalidAnnotationError(ValueError):
    """An annotation X-Ray would reject or silently drop."""


def validate_annotations(
    annotations: Mapping[str, AnnotationValue], already_present: int = 0
) -> dict[str, AnnotationValue]:
    """Check keys, value types and the per-subsegment limit; return the annotations unchanged."""
    if already_present + len(annotations) > MAX_ANNOTATIONS_PER_SUBSEGMENT:
        raise InvalidAnnotationError(
            f"{already_present + len(annotations)} annotations on one subsegment; "
            f"X-Ray allows {MAX_ANNOTATIONS_PER_SUBSEGMENT}"
        )
    for key, value in annotations.items():
        if not ANNOTATION_KEY.match(key):
            raise InvalidAnnotationError(f"annotation key {key!r} must match {ANNOTATION_KEY.pattern}")
        if not isinstance(value, str | int | float | bool):
            raise InvalidAnnotationError(f"annotation {key!r} must be a string, number or boolean")
        if isinstance(value, str) and len(value) > MAX_ANNOTATION_VALUE_CHARS:
            raise InvalidAnnotationError(f"annotation {key!r} is longer than {MAX_ANNOTATION_VALUE_CHARS}")
    return dict(annotations)
