"""The resources of the stack map (tables, topics, queues, secrets), created on the local AWS the way
Terraform creates them in AWS, and the env values of the map resolved to their names / ARNs.

Example:
    >>> Resources(tables={"news_items": "sentiment-analyzer-local-news_items"}).resolve("table:news_items")
    'sentiment-analyzer-local-news_items'
    >>> Resources().resolve("sentiment-analyzer-${env}-ingestion")
    'sentiment-analyzer-local-ingestion'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3

from devstack.stack import LOCAL_ENVIRONMENT, Stack, physical_name

ENV_PLACEHOLDER = "${env}"  # in a stack-map literal: the environment name (Terraform: replace() with var.env)


@dataclass
class Resources:
    """Physical names / ARNs of what `create_resources` made, keyed like the stack map."""

    tables: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: str) -> str:
        """An env value of the stack map: `table:<key>` etc. become names / ARNs; literals stay, with
        `${env}` replaced by the environment name."""
        kind, sep, key = value.partition(":")
        lookup = {"table": self.tables, "topic": self.topics, "queue": self.queues, "secret": self.secrets}
        if sep and kind in lookup:
            return lookup[kind][key]
        # A literal may name another function's physical name: `sentiment-analyzer-${env}-ingestion`.
        return value.replace(ENV_PLACEHOLDER, LOCAL_ENVIRONMENT)


def table_definition(key: str, spec: dict[str, Any]) -> dict[str, Any]:
    """CreateTable arguments for one table of the stack map (the same shape Terraform builds)."""
    attributes = {
        spec["hash_key"]["name"]: spec["hash_key"]["type"],
        spec["range_key"]["name"]: spec["range_key"]["type"],
    }
    indexes = []
    for index_name, index in spec["global_secondary_indexes"].items():
        attributes[index["hash_key"]["name"]] = index["hash_key"]["type"]
        attributes[index["range_key"]["name"]] = index["range_key"]["type"]
        indexes.append({
            "IndexName": index_name,
            "KeySchema": [
                {"AttributeName": index["hash_key"]["name"], "KeyType": "HASH"},
                {"AttributeName": index["range_key"]["name"], "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        })
    definition: dict[str, Any] = {
        "TableName": physical_name(key),
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": kind} for name, kind in attributes.items()],
        "KeySchema": [
            {"AttributeName": spec["hash_key"]["name"], "KeyType": "HASH"},
            {"AttributeName": spec["range_key"]["name"], "KeyType": "RANGE"},
        ],
    }
    if indexes:
        definition["GlobalSecondaryIndexes"] = indexes
    return definition


def create_resources(stack: Stack) -> Resources:
    """Create every table, topic, queue and secret of the stack map (idempotent per server)."""
    resources = Resources()
    dynamodb = boto3.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for key, spec in stack.tables.items():
        name = physical_name(key)
        if name not in existing:
            dynamodb.create_table(**table_definition(key, spec))
            if spec.get("ttl_attribute"):
                dynamodb.update_time_to_live(
                    TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec["ttl_attribute"]}
                )
        resources.tables[key] = name
    sns = boto3.client("sns")
    for key, spec in stack.topics.items():
        arn = sns.create_topic(Name=physical_name(key))["TopicArn"]
        sns.set_topic_attributes(TopicArn=arn, AttributeName="TracingConfig", AttributeValue=spec["tracing"])
        resources.topics[key] = arn
    sqs = boto3.client("sqs")
    for key in stack.queues:
        url = sqs.create_queue(QueueName=physical_name(key))["QueueUrl"]
        resources.queues[key] = url
        resources.queue_arns[key] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
    secretsmanager = boto3.client("secretsmanager")
    existing_secrets = {s["Name"] for s in secretsmanager.list_secrets()["SecretList"]}
    for key in stack.secrets:
        name = physical_name(key)
        if name not in existing_secrets:
            secretsmanager.create_secret(Name=name, SecretString="{}")
        resources.secrets[key] = name
    return resources
