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
    serialize_documents,
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


def _subsegment(entity_id: str, parent_id: str, metadata_chars: int = 0, **more: object) -> dict[str, object]:
    document: dict[str, object] = {"id": entity_id, "name": f"n{entity_id[0]}", "type": "subsegment",
                                   "trace_id": "1-00000000-" + "0" * 24, "parent_id": parent_id,
                                   "start_time": 1, "end_time": 2, **more}
    if metadata_chars:
        document["metadata"] = {"default": {"value": "v" * metadata_chars}}
    return document


@pytest.mark.req("FR-058")
def test_a_tree_that_fits_is_one_document_with_its_causes_bounded() -> None:
    child = _subsegment("b" * 16, "a" * 16, cause={"exceptions": [{"message": "m" * 5000}]})
    [sent] = serialize_documents(_subsegment("a" * 16, "f" * 16, subsegments=[child]))
    document = json.loads(sent)
    assert document["subsegments"][0]["id"] == "b" * 16
    assert len(document["subsegments"][0]["cause"]["exceptions"][0]["message"]) == MAX_MESSAGE_CHARS


@pytest.mark.req("FR-058", "SC-025")
def test_a_tree_over_the_budget_is_split_into_whole_documents_not_cut() -> None:
    children = [_subsegment(f"{letter}" * 16, "a" * 16, metadata_chars=25_000) for letter in "bcd"]
    grandchild = _subsegment("e" * 16, "d" * 16, metadata_chars=100)
    children[2]["subsegments"] = [grandchild]
    sent = [json.loads(payload) for payload in
            serialize_documents(_subsegment("a" * 16, "f" * 16, metadata_chars=10, subsegments=children))]

    assert all(len(json.dumps(document, separators=(",", ":"))) <= DOCUMENT_BUDGET_BYTES for document in sent)
    by_id = {document["id"]: document for document in sent}
    assert set(by_id) == {"a" * 16, "b" * 16, "c" * 16, "d" * 16}  # d fits with its grandchild
    assert "subsegments" not in by_id["a" * 16]
    assert by_id["d" * 16]["subsegments"][0]["id"] == "e" * 16
    for document in sent:  # each one whole: its own trace and parent ids, its metadata kept
        assert document["trace_id"] == "1-00000000-" + "0" * 24 and document["parent_id"]
        assert METADATA_DROPPED not in json.dumps(document)
