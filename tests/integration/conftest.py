"""Fixtures shared by integration modules, defined once (a session fixture imported into two modules
would be two fixtures, each with its own instance):
- the canary's (test_canary, test_canary_probes);
- the SSE image's (test_sse_image_build, test_sse_container): one docker engine
  (scripts/docker_engine.py: found running, or started here and stopped at the end) and one build of
  the image (scripts/sse_image.py, cached between runs) for the whole session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.aws.resources import Resources
from devstack.xray.pipeline import TracePipeline
from scripts import sse_image
from scripts.docker_engine import Engine, EngineUnavailable
from tests.integration.canary_stack import ProbeTargets, canary_probe_env, probe_targets
from tests.integration.test_canary import CanaryHarness, seed_ingestion_heartbeat

__all__ = ["canary", "engine", "image", "probe_targets"]


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


TAG = "sentiment-analyzer-sse:test"


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """A machine that cannot run dockerd fails the image tests with the reason; it never skips them."""
    try:
        started = Engine.start(sse_image.cache_dir() / "engine")
    except EngineUnavailable as why:
        pytest.fail(f"the SSE image tests need a docker engine and this machine cannot run one: {why}")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = started.host
    yield started
    started.stop()
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


@pytest.fixture(scope="session")
def image(engine: Engine) -> sse_image.Built:
    return sse_image.build(TAG, sse_image.standin_layer(), quiet=True)
