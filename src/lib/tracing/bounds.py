"""FR-058: keep every trace document below X-Ray's 64 KB limit.

Error messages are cut at 2,048 characters, stacks at 10 frames; metadata that would push a
document over the limit is replaced by a short marker. The same limits apply to OTel attributes.

Example:
    >>> len(truncate_message("x" * 5000))
    2048
"""

from __future__ import annotations

import json
from typing import Any

MAX_MESSAGE_CHARS = 2048
MAX_STACK_FRAMES = 10
MAX_DOCUMENT_BYTES = 64 * 1024
# Margin for the UDP header line and for the exporter's own fields.
DOCUMENT_BUDGET_BYTES = MAX_DOCUMENT_BYTES - 2 * 1024
TRUNCATION_MARK = "...[truncated]"
METADATA_DROPPED = "[dropped: document over 62 KB]"


def truncate_message(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Cut a message to `limit` characters, marking the cut."""
    if len(message) <= limit:
        return message
    return message[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def _bound_cause(cause: dict[str, Any]) -> None:
    for exception in cause.get("exceptions", []):
        if isinstance(exception.get("message"), str):
            exception["message"] = truncate_message(exception["message"])
        if isinstance(exception.get("stack"), list):
            exception["stack"] = exception["stack"][:MAX_STACK_FRAMES]
            exception["truncated"] = max(0, int(exception.get("truncated", 0)))


def document_size(document: dict[str, Any]) -> int:
    return len(json.dumps(document, separators=(",", ":"), default=str).encode())


def bound_document(document: dict[str, Any]) -> dict[str, Any]:
    """Bound one X-Ray segment document in place and return it.

    Causes are always bounded; metadata is dropped, namespace by namespace, only when the
    document is still over budget. A document that cannot be bounded raises ValueError: sending
    it would lose it silently.
    """
    if isinstance(document.get("cause"), dict):
        _bound_cause(document["cause"])
    for child in document.get("subsegments", []):
        bound_document(child)
    if document_size(document) <= DOCUMENT_BUDGET_BYTES:
        return document
    metadata = document.get("metadata")
    if isinstance(metadata, dict):
        for namespace in list(metadata):
            metadata[namespace] = METADATA_DROPPED
            if document_size(document) <= DOCUMENT_BUDGET_BYTES:
                return document
    size = document_size(document)
    if size > DOCUMENT_BUDGET_BYTES:
        raise ValueError(f"trace document of {size} bytes cannot be bounded below {DOCUMENT_BUDGET_BYTES}")
    return document


def _bound_causes(document: dict[str, Any]) -> None:
    if isinstance(document.get("cause"), dict):
        _bound_cause(document["cause"])
    for child in document.get("subsegments", []):
        _bound_causes(child)


def serialize_documents(document: dict[str, Any]) -> list[str]:
    """`document` as X-Ray documents below the budget, serialised compactly.

    Causes are always bounded. A document that fits is sent whole, nested subsegments included
    (one `json.dumps`, the usual case). One over budget is split, not cut: each nested subsegment
    becomes a document of its own (it carries its `trace_id`, `parent_id` and `type`), recursively,
    and only a single entity still over budget takes `bound_document`'s metadata-dropping path.
    The output is ASCII (`ensure_ascii`), so a document's length is its size in bytes.

    Example:
        >>> document = {"name": "x", "cause": {"exceptions": [{"message": "m" * 5000}]}}
        >>> [sent] = serialize_documents(document)
        >>> len(json.loads(sent)["cause"]["exceptions"][0]["message"])
        2048
    """
    _bound_causes(document)
    payload = json.dumps(document, separators=(",", ":"), default=str)
    if len(payload) <= DOCUMENT_BUDGET_BYTES:
        return [payload]
    children = document.pop("subsegments", [])
    split = [part for child in children for part in serialize_documents(child)]
    return [*split, json.dumps(bound_document(document), separators=(",", ":"), default=str)]


def bound_attribute(value: str) -> str:
    """An OTel attribute value, bounded like an X-Ray message."""
    return truncate_message(value)
