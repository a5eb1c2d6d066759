"""The probes' expected trees (lambdas/canary/tree_spec.py) judged on documents shaped as
BatchGetTraces returns them: segments with their subsegments embedded."""

from __future__ import annotations

from typing import Any

import pytest

from lambdas.canary.tree_spec import BATCH_TREE, STREAM_TREE, Outcome, evaluate


def batch_documents(handler: bool = True, aws_call: bool = True) -> list[dict[str, Any]]:
    call = [{"id": "c" * 16, "name": "DynamoDB", "namespace": "aws", "start_time": 1.0}] if aws_call else []
    function: dict[str, Any] = {"id": "f" * 16, "name": "fn", "origin": "AWS::Lambda::Function",
                                "parent_id": "a" * 16, "start_time": 1.0}
    if handler:
        function["subsegments"] = [{"id": "b" * 16, "name": "## lambda_handler", "start_time": 1.0,
                                    "subsegments": call}]
    service = {"id": "a" * 16, "name": "fn", "origin": "AWS::Lambda", "start_time": 1.0}
    return [service, function]


@pytest.mark.req("FR-066", "SC-014")
def test_a_whole_batch_tree_is_complete() -> None:
    verdict = evaluate(BATCH_TREE, batch_documents())
    assert verdict.outcome is Outcome.COMPLETE and verdict.missing == () and verdict.documents == 4


@pytest.mark.req("FR-066", "SC-014")
def test_a_missing_handler_subsegment_names_the_daemon_or_iam_and_not_its_children() -> None:
    verdict = evaluate(BATCH_TREE, batch_documents(handler=False))
    assert verdict.outcome is Outcome.PARTIAL
    assert verdict.missing == ("handler subsegment missing: daemon or IAM",)


@pytest.mark.req("FR-066")
def test_a_missing_aws_call_subsegment_is_named() -> None:
    verdict = evaluate(BATCH_TREE, batch_documents(aws_call=False))
    assert verdict.missing == ("AWS call subsegment missing: botocore not patched, or daemon",)


@pytest.mark.req("FR-066", "FR-036")
def test_nothing_arrived_is_lost_not_partial() -> None:
    verdict = evaluate(STREAM_TREE, [])
    assert verdict.outcome is Outcome.LOST and verdict.documents == 0
    assert verdict.missing[0].startswith("trace lost, no document arrived")


@pytest.mark.req("FR-074", "FR-075", "SC-023")
def test_stream_spans_outside_the_function_segment_do_not_count() -> None:
    documents = batch_documents(aws_call=False)
    stream = {"id": "d" * 16, "name": "sse.global_stream", "parent_id": "9" * 16, "start_time": 1.0}
    poll = {"id": "e" * 16, "name": "sse.poll", "parent_id": "d" * 16, "start_time": 1.0}
    verdict = evaluate(STREAM_TREE, [*documents, stream, poll])
    assert verdict.missing == ("SSE spans not under the AWS::Lambda::Function segment: collector or exporter",)
    stream["parent_id"] = "f" * 16
    assert evaluate(STREAM_TREE, [*documents, stream, poll]).outcome is Outcome.COMPLETE
    assert evaluate(STREAM_TREE, [*documents, stream]).missing == ("SSE poll span missing: collector or exporter",)
