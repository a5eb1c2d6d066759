"""Contract: SNS → Lambda delivery with active tracing (aws/sns_delivery.py).

SNS writes an `AWS::SNS` segment only where an X-Ray resource policy lets sns.amazonaws.com call
PutTraceSegments, and Terraform writes that policy for exactly the topics whose map `tracing` is
`Active` (modules/data `traced_topics`); a PassThrough topic passes the trace header on:
https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sns.html
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from devstack.aws.resources import Resources
from devstack.aws.sns_delivery import Publication, SnsDelivery
from devstack.stack import Stack, load_stack
from devstack.xray.pipeline import TracePipeline
from lib.tracing.header import TraceHeader, new_entity_id
from tests.infra.hcl import module


def _stack_with_a_passthrough_subscriber() -> Stack:
    raw = copy.deepcopy(load_stack().raw)
    raw["functions"]["alarm_reader"] = {**raw["functions"]["notification"],
                                        "trigger": {"type": "sns", "topic": "alarms"}}
    return Stack(raw)


class Recorder:
    def __init__(self) -> None:
        self.upstreams: list[TraceHeader | None] = []

    def __call__(self, key: str, event: Any, upstream: TraceHeader | None = None,
                 upstream_segment_written: bool = False) -> tuple[Any, None]:
        self.upstreams.append(upstream)
        return None, None


def _publish(delivery: SnsDelivery, topic_arn: str, invoke: Recorder) -> TraceHeader:
    publisher = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    delivery.deliver(Publication(topic_arn, "{}", None, "m-1", publisher, time.time()), invoke)
    return publisher


@pytest.mark.req("FR-013")
def test_the_devstack_traces_the_topics_terraforms_resource_policy_covers(stack_resources: Resources) -> None:
    """The policy's topics are `{ for key, topic in var.topics : key => topic if topic.tracing == "Active" }`."""
    traced = module("data").locals["traced_topics"]
    assert 'topic.tracing == "Active"' in str(traced)
    delivery = SnsDelivery(load_stack(), stack_resources, "127.0.0.1:2000")
    active = {key for key, topic in load_stack().topics.items() if topic["tracing"] == "Active"}
    assert delivery.traced_topics == {stack_resources.topics[key] for key in active}
    assert {"news_items", "sentiment_scored"} == active


@pytest.mark.req("FR-013", "SC-008")
def test_an_active_topic_writes_an_sns_segment_and_the_function_hangs_under_it(
        trace_pipeline: TracePipeline, stack_resources: Resources) -> None:
    delivery, invoke = SnsDelivery(load_stack(), stack_resources, trace_pipeline.daemon.address), Recorder()
    publisher = _publish(delivery, stack_resources.topics["news_items"], invoke)
    [upstream] = invoke.upstreams
    assert upstream is not None and upstream.root == publisher.root and upstream.parent != publisher.parent
    [segment] = trace_pipeline.documents(publisher.root)
    assert segment["origin"] == "AWS::SNS" and segment["parent_id"] == publisher.parent
    assert segment["id"] == upstream.parent


@pytest.mark.req("FR-013")
def test_a_topic_outside_the_resource_policy_writes_nothing_and_passes_the_header_on(
        trace_pipeline: TracePipeline, stack_resources: Resources) -> None:
    delivery = SnsDelivery(_stack_with_a_passthrough_subscriber(), stack_resources, trace_pipeline.daemon.address)
    invoke = Recorder()
    publisher = _publish(delivery, stack_resources.topics["alarms"], invoke)
    assert invoke.upstreams == [publisher]
    assert trace_pipeline.documents(publisher.root) == []
