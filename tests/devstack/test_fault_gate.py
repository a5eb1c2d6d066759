"""The fault gate in front of the local stack's moto: rules answer exactly the calls they name, in the
protocol's own error shape; the SNS tap sees each publish with the publisher's trace header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.aws.fault_gate import AwsGate, FaultRule, GatedMotoServer
from devstack.aws.sns_delivery import Publication
from lib.tracing.header import TraceHeader, new_entity_id

TABLE = "gate-test-state"
OTHER = "gate-test-other"


@pytest.fixture(scope="module")
def gated() -> Iterator[tuple[AwsGate, GatedMotoServer]]:
    gate = AwsGate()
    server = GatedMotoServer(gate).start()
    yield gate, server
    server.stop()


@pytest.fixture(scope="module")
def clients(gated: tuple[AwsGate, GatedMotoServer]) -> dict[str, Any]:
    _, server = gated
    made = {name: boto3.client(name, endpoint_url=server.endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            for name in ("dynamodb", "sns")}
    for table in (TABLE, OTHER):
        made["dynamodb"].create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    made["topic"] = made["sns"].create_topic(Name="gate-test-topic")["TopicArn"]
    return made


def traced(client: Any, header: TraceHeader) -> Any:
    """Put `header` on every request of `client`, as the X-Ray SDK's botocore patch does."""
    def inject(request: Any, **_: Any) -> None:
        request.headers["X-Amzn-Trace-Id"] = header.format()

    client.meta.events.register_first("before-sign.*.*", inject)
    return client


def put(client: Any, table: str, pk: str) -> None:
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "1"}})


def test_a_rule_answers_only_the_calls_it_names_with_the_modelled_error(
        gated: tuple[AwsGate, GatedMotoServer], clients: dict[str, Any]) -> None:
    gate, _ = gated
    dynamodb = clients["dynamodb"]
    rule = gate.arm(FaultRule.dynamodb("PutItem", table=TABLE, value="breaker"))
    try:
        put(dynamodb, TABLE, "audit#x")   # another value
        put(dynamodb, OTHER, "breaker")   # another table
        with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
            put(dynamodb, TABLE, "breaker")
        put(dynamodb, TABLE, "breaker")   # times=1: spent
    finally:
        gate.disarm(rule)
    assert rule.hits == 1 and rule.spent


def test_a_rule_scoped_to_a_trace_leaves_every_other_trace_alone(
        gated: tuple[AwsGate, GatedMotoServer], clients: dict[str, Any], ) -> None:
    gate, server = gated
    ours, theirs = TraceHeader.new_root().with_parent(new_entity_id(), True), TraceHeader.new_root()
    make = lambda header: traced(boto3.client(  # noqa: E731
        "dynamodb", endpoint_url=server.endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing"), header)
    rule = gate.arm(FaultRule.dynamodb("PutItem", table=TABLE), trace_root=ours.root)
    rule.times = None  # every matching call of that trace
    try:
        put(make(theirs), TABLE, "a")
        put(clients["dynamodb"], TABLE, "b")  # no trace header at all
        for _ in range(2):
            with pytest.raises(ClientError, match="ResourceNotFoundException"):
                put(make(ours), TABLE, "c")
    finally:
        gate.disarm(rule)
    assert rule.hits == 2


def test_a_transaction_is_matched_by_the_tables_it_writes(
        gated: tuple[AwsGate, GatedMotoServer], clients: dict[str, Any]) -> None:
    gate, _ = gated
    dynamodb = clients["dynamodb"]
    rule = gate.arm(FaultRule.dynamodb("TransactWriteItems", table=OTHER))
    items = lambda table: [{"Put": {"TableName": table, "Item": {"pk": {"S": "t"}, "sk": {"S": "1"}}}}]  # noqa: E731
    try:
        dynamodb.transact_write_items(TransactItems=items(TABLE))
        with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
            dynamodb.transact_write_items(TransactItems=items(OTHER))
    finally:
        gate.disarm(rule)
    assert rule.hits == 1


@pytest.mark.req("FR-013")
def test_the_publish_tap_carries_the_publishers_trace_header_and_a_failed_publish_is_not_delivered(
        gated: tuple[AwsGate, GatedMotoServer], clients: dict[str, Any]) -> None:
    gate, server = gated
    seen: list[Publication] = []
    gate.on_publish(seen.append)
    header = TraceHeader.new_root().with_parent(new_entity_id(), True)
    sns = traced(boto3.client("sns", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing"), header)
    rule = gate.arm(FaultRule.sns_publish(clients["topic"]))
    try:
        with pytest.raises(ClientError, match="AuthorizationError"):
            sns.publish(TopicArn=clients["topic"], Message="refused")
        message_id = sns.publish(TopicArn=clients["topic"], Message='{"item_id": "x"}')["MessageId"]
    finally:
        gate.disarm(rule)

    assert [(p.message, p.message_id, p.trace_header) for p in seen] == [('{"item_id": "x"}', message_id, header)]
