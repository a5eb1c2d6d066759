"""Annotation keys X-Ray can index, and the 50-per-subsegment limit."""

from __future__ import annotations

import pytest

from lib.tracing.annotations import InvalidAnnotationError, validate_annotations


@pytest.mark.req("FR-006", "FR-009")
def test_valid_annotations_pass_unchanged() -> None:
    values = {"latency_ms": 12.5, "is_cold_start": True, "event_type": "heartbeat", "item_count": 3}
    assert validate_annotations(values) == values


@pytest.mark.req("FR-006")
@pytest.mark.parametrize("key", ["client.disconnected", "has space", "", "dash-key", "k" * 501, "ünï"])
def test_keys_x_ray_would_reject_raise(key: str) -> None:
    with pytest.raises(InvalidAnnotationError):
        validate_annotations({key: 1})


@pytest.mark.req("FR-006")
def test_more_than_50_per_subsegment_raises() -> None:
    validate_annotations({f"k{i}": i for i in range(50)})
    with pytest.raises(InvalidAnnotationError):
        validate_annotations({f"k{i}": i for i in range(51)})
    with pytest.raises(InvalidAnnotationError):
        validate_annotations({"one_more": 1}, already_present=50)


@pytest.mark.req("FR-058")
def test_values_must_be_scalars_and_bounded() -> None:
    with pytest.raises(InvalidAnnotationError):
        validate_annotations({"payload": {"nested": 1}})  # type: ignore[dict-item]
    with pytest.raises(InvalidAnnotationError):
        validate_annotations({"long": "v" * 1001})
