"""Fixtures shared by the canary's integration modules (test_canary, test_canary_probes), defined once:
a session fixture imported into two modules would be two fixtures, each with its own instance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.aws.resources import Resources
from devstack.xray.pipeline import TracePipeline
from tests.integration.canary_stack import ProbeTargets, canary_probe_env, probe_targets
from tests.integration.test_canary import CanaryHarness, seed_ingestion_heartbeat

__all__ = ["canary", "probe_targets"]


@pytest.fixture
def canary(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources,
           probe_targets: ProbeTargets) -> Iterator[CanaryHarness]:
    """A fresh canary state and its own SQS queue subscribed to the alert topic (the out-of-band channel)."""
    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    queue_url = sqs.create_queue(QueueName=f"canary-alerts-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscription = sns.subscribe(TopicArn=stack_resources.topics["canary_alerts"], Protocol="sqs",
                                 Endpoint=queue_arn)["SubscriptionArn"]
    table = boto3.resource("dynamodb").Table(stack_resources.tables["state"])
    table.delete_item(Key={"pk": "canary", "sk": "state"})
    env = {**invoke.env("canary"), **canary_probe_env(probe_targets)}
    seed_ingestion_heartbeat(env["INGESTION_FUNCTION_NAME"])
    yield CanaryHarness(trace_pipeline, stack_resources, env, queue_url)
    table.delete_item(Key={"pk": "canary", "sk": "state"})
    sns.unsubscribe(SubscriptionArn=subscription)
    sqs.delete_queue(QueueUrl=queue_url)
