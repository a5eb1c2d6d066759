"""Data resources from the map: DynamoDB tables, SNS topics (active tracing where the map says),
encrypted DLQs, secrets without values."""

from __future__ import annotations

import pytest

from tests.infra.hcl import block, expression, module, modules, stack

DATA = "data"


def table():
    return module(DATA).of_type("aws_dynamodb_table")["this"]


@pytest.mark.req("FR-017")
def test_tables_come_from_the_map_on_demand_with_pitr_and_encryption():
    body = table()
    assert expression(body["for_each"]) == "var.tables"
    assert body["billing_mode"] == "PAY_PER_REQUEST"
    assert body["name"] == "${var.name_prefix}-${each.key}"
    assert expression(body["hash_key"]) == "each.value.hash_key.name"
    assert expression(body["range_key"]) == "each.value.range_key.name"
    assert block(body, "point_in_time_recovery")[0]["enabled"] is True
    sse = block(body, "server_side_encryption")[0]
    assert sse["enabled"] is True and expression(sse["kms_key_arn"]) == "aws_kms_key.stack.arn"


@pytest.mark.req("FR-017")
def test_gsis_ttl_and_attributes_are_derived_from_the_map():
    dynamics = {name: d[name] for d in block(table(), "dynamic") for name in d}
    gsi = dynamics["global_secondary_index"]
    assert expression(gsi["for_each"]) == "each.value.global_secondary_indexes"
    assert gsi["content"][0]["projection_type"] == "ALL"
    ttl = dynamics["ttl"]
    assert expression(ttl["for_each"]) == "each.value.ttl_attribute == null ? [] : [each.value.ttl_attribute]"
    attribute = str(dynamics["attribute"]["for_each"])
    for source in ("each.value.hash_key.name", "g.hash_key.name", "g.range_key.name"):
        assert source in attribute
    # the map the devstack also reads: contract names of tables and indexes
    tables = stack()["tables"]
    assert set(tables) == {"news", "timeseries", "state", "config", "idempotency"}
    assert set(tables["news"]["global_secondary_indexes"]) == {"status-index", "ticker-index", "sentiment-index"}


@pytest.mark.req("FR-017")
def test_the_idempotency_table_is_the_layout_powertools_writes_with_ttl_on_its_expiry():
    """Powertools' DynamoDBPersistenceLayer with `sort_key_attr="sort_key"`: partition `id` (a static
    `idempotency#<function>`), sort key the hashed idempotency key, epoch seconds in `expiration`
    (aws_lambda_powertools/utilities/idempotency/persistence/dynamodb.py)."""
    spec = stack()["tables"]["idempotency"]
    assert spec["hash_key"] == {"name": "id", "type": "S"}
    assert spec["range_key"] == {"name": "sort_key", "type": "S"}
    assert spec["ttl_attribute"] == "expiration" and spec["global_secondary_indexes"] == {}
    assert stack()["functions"]["notification"]["env"]["IDEMPOTENCY_TABLE"] == "table:idempotency"


@pytest.mark.req("FR-013", "FR-017")
def test_topics_trace_actively_where_the_map_says():
    topic = module(DATA).of_type("aws_sns_topic")["this"]
    assert expression(topic["for_each"]) == "var.topics"
    assert expression(topic["tracing_config"]) == "each.value.tracing"
    assert expression(topic["kms_master_key_id"]) == "aws_kms_key.stack.arn"
    topics = stack()["topics"]
    assert topics["news_items"]["tracing"] == "Active" and topics["sentiment_scored"]["tracing"] == "Active"
    assert {t["tracing"] for t in topics.values()} <= {"Active", "PassThrough"}


@pytest.mark.req("FR-017")
def test_dead_letter_queues_are_encrypted():
    queue = module(DATA).of_type("aws_sqs_queue")["this"]
    assert expression(queue["for_each"]) == "var.queues"
    assert expression(queue["kms_master_key_id"]) == "aws_kms_key.stack.arn"


@pytest.mark.req("FR-017")
def test_secrets_exist_without_values():
    secret = module(DATA).of_type("aws_secretsmanager_secret")["this"]
    assert expression(secret["for_each"]) == "var.secrets"
    for mod in modules().values():
        assert not mod.of_type("aws_secretsmanager_secret_version"), f"{mod.name}: a secret value in Terraform"


@pytest.mark.req("FR-017")
def test_the_stack_key_rotates_and_lets_alarms_and_logs_use_it():
    key = module(DATA).of_type("aws_kms_key")["stack"]
    assert key["enable_key_rotation"] is True
    policy = str(module(DATA).data[("aws_iam_policy_document", "kms")])
    assert "cloudwatch.amazonaws.com" in policy and "logs.${local.region}.amazonaws.com" in policy


@pytest.mark.req("FR-017")
def test_devstack_tables_agree_with_terraform():
    """The devstack creates its tables from the same map, the way this module does."""
    from devstack.aws import table_definition
    from devstack.stack import physical_name

    body = table()
    gsi_projection = next(d["global_secondary_index"] for d in block(body, "dynamic")
                          if "global_secondary_index" in d)["content"][0]["projection_type"]
    for key, spec in stack()["tables"].items():
        local = table_definition(key, spec)
        assert local["BillingMode"] == body["billing_mode"]
        terraform_name = body["name"].replace("${var.name_prefix}", "sentiment-analyzer-local")
        terraform_name = terraform_name.replace("${each.key}", key)
        assert local["TableName"] == physical_name(key) == terraform_name
        indexes = local.get("GlobalSecondaryIndexes", [])
        assert {i["Projection"]["ProjectionType"] for i in indexes} <= {gsi_projection}
        assert {i["IndexName"] for i in indexes} == set(spec["global_secondary_indexes"])
