"""FR-058: documents stay under 64 KB, messages at 2,048 characters, stacks at 10 frames."""

from __future__ import annotations

import json

import pytest

from lib.tracing.bounds import (
    DOCUMENT_BUDGET_BYTES,
    MAX_MESSAGE_CHARS,
    METADATA_DROPPED,
    bound_document,
    document_size,
    truncate_message,
)


@pytest.mark.req("FR-058", "SC-025")
def test_messages_are_cut_at_2048_characters_with_a_mark() -> None:
    cut = truncate_message("x" * 1_000_000)
    assert len(cut) == MAX_MESSAGE_CHARS and cut.endswith("[truncated]")
    assert truncate_message("short") == "short"


@pytest.mark.req("FR-058", "SC-025")
def test_cause_is_bounded_in_nested_subsegments() -> None:
    frames = [{"path": f"f{i}.py", "line": i, "label": "fn"} for i in range(50)]
    document = {
        "id": "a" * 16, "name": "fn", "trace_id": "1-00000000-" + "0" * 24, "start_time": 1,
        "subsegments": [{"id": "b" * 16, "name": "child", "start_time": 1,
                         "cause": {"exceptions": [{"message": "m" * 100_000, "stack": frames}]}}],
    }
    bounded = bound_document(document)
    exception = bounded["subsegments"][0]["cause"]["exceptions"][0]
    assert len(exception["message"]) == MAX_MESSAGE_CHARS
    assert len(exception["stack"]) == 10


@pytest.mark.req("FR-058", "SC-025")
def test_oversized_metadata_is_dropped_not_the_document() -> None:
    document = {"id": "a" * 16, "name": "fn", "start_time": 1,
                "metadata": {"small": {"k": 1}, "big": {"body": "y" * 200_000}}}
    bounded = bound_document(document)
    assert document_size(bounded) <= DOCUMENT_BUDGET_BYTES
    assert METADATA_DROPPED in json.dumps(bounded["metadata"])


@pytest.mark.req("FR-058")
def test_a_document_that_cannot_be_bounded_raises() -> None:
    with pytest.raises(ValueError):
        bound_document({"id": "a" * 16, "name": "n" * 100_000, "start_time": 1})
