"""IAM: one role per function, X-Ray write on every role (FR-017), least privilege from what each
function's code calls, PutMetricData limited to the contract's namespaces, the canary apart (FR-051)."""

from __future__ import annotations

import pytest

from tests.infra.hcl import block, contract_metrics, expression, module, stack

LAMBDA = "lambda_functions"
XRAY_WRITE = {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
              "xray:GetSamplingTargets", "xray:GetSamplingStatisticSummaries"}
READ_WRITE = ["GetItem", "PutItem", "UpdateItem", "Query"]
DASHBOARD = ["Query", "GetItem", "PutItem", "UpdateItem", "DeleteItem"]  # rule + owner count, one transaction

# What each function's code calls (the least-privilege table), in the map's terms.
EXPECTED = {
    "ingestion": {
        "dynamodb": {**{t: {"actions": READ_WRITE, "resources": ["table", "index/*"]} for t in ("news", "state")},
                     "config": {"actions": ["Query"], "resources": ["table"]}},  # tracked_tickers() only
        "sns_publish": ["news_items"], "secrets_read": ["news_api"], "metric_namespace": "app",
    },
    "analysis": {
        "dynamodb": {"news": {"actions": ["GetItem", "UpdateItem"], "resources": ["table"]},
                     # transact_write_items of Updates
                     "timeseries": {"actions": ["UpdateItem"], "resources": ["table"]}},
        "sns_publish": ["sentiment_scored"], "metric_namespace": "app",
    },
    "dashboard": {
        # DashboardReader reads news (ticker-index) and timeseries; AlertTable writes config.
        "dynamodb": {"news": {"actions": ["Query", "GetItem"], "resources": ["table", "index/*"]},
                     "timeseries": {"actions": ["Query"], "resources": ["table"]},
                     "config": {"actions": DASHBOARD, "resources": ["table", "index/owner-index"]}},
    },
    "notification": {
        # idempotency: exactly the calls of Powertools' DynamoDBPersistenceLayer (lock, read, complete, release)
        "dynamodb": {"config": {"actions": ["Query", "GetItem"], "resources": ["table"]},
                     "idempotency": {"actions": ["GetItem", "PutItem", "UpdateItem", "DeleteItem"],
                                     "resources": ["table"]},
                     # lambdas/notification/quota.py: the daily email counters, one partition
                     "state": {"actions": ["UpdateItem"], "resources": ["table"], "leading_keys": ["email-quota"]}},
        "secrets_read": ["sendgrid"], "metric_namespace": "app",
    },
    "metrics": {
        "dynamodb": {"news": {"actions": ["Query"], "resources": ["index/status-index"]}},
        "metric_namespace": "app",
    },
    "sse_streaming": {
        "dynamodb": {"news": {"actions": ["Query", "GetItem"], "resources": ["table", "index/status-index"]},
                     "config": {"actions": ["Query", "GetItem"], "resources": ["table"]}},
        "secrets_read": ["canary_probe"], "metric_namespace": "app",
    },
    "canary": {
        # canary/state.py: get_item and put_item of pk="canary" only, in a table ingestion shares.
        "dynamodb": {"state": {"actions": ["GetItem", "PutItem"], "resources": ["table"], "leading_keys": ["canary"]}},
        "sns_publish": ["canary_alerts"], "metric_namespace": "canary", "xray_read": True, "cloudwatch_read": True,
        "secrets_read": ["canary_probe"],
        "lambda_invoke": {"dashboard": ["InvokeFunction"], "sse_streaming": ["InvokeWithResponseStream"]},
    },
}


def policy_document():
    return module(LAMBDA).data[("aws_iam_policy_document", "function")]


def static_statements():
    return {s["sid"]: s for s in block(policy_document(), "statement")}


def dynamic_statements():
    return [d["statement"] for d in block(policy_document(), "dynamic") if "statement" in d]


def dynamic_statement(sid_fragment: str):
    found = [s for s in dynamic_statements() if sid_fragment in str(s["content"][0]["sid"])]
    assert len(found) == 1, f"one dynamic statement {sid_fragment}"
    return found[0]


@pytest.mark.req("FR-017", "FR-051")
def test_one_role_per_function_each_with_its_own_policy():
    mod = module(LAMBDA)
    roles = mod.of_type("aws_iam_role")
    assert list(roles) == ["this"] and expression(roles["this"]["for_each"]) == "var.functions"
    assert expression(roles["this"]["name"]) == "local.function_names[each.key]"
    policy = mod.of_type("aws_iam_role_policy")["this"]
    assert expression(policy["for_each"]) == "var.functions"
    assert expression(policy["role"]) == "aws_iam_role.this[each.key].id"
    assert expression(policy["policy"]) == "data.aws_iam_policy_document.function[each.key].json"
    assert expression(policy_document()["for_each"]) == "var.functions"
    assert expression(mod.of_type("aws_lambda_function")["this"]["role"]) == "aws_iam_role.this[each.key].arn"
    assert not mod.of_type("aws_iam_role_policy_attachment"), "no managed policies on function roles"


@pytest.mark.req("FR-017", "SC-003")
def test_every_role_can_write_xray():
    statement = static_statements()["XRayWrite"]
    assert statement.get("effect", "Allow") == "Allow"
    assert expression(statement["actions"]) == "local.xray_write_actions"
    assert set(module(LAMBDA).locals["xray_write_actions"]) == XRAY_WRITE
    assert statement["resources"] == ["*"]
    assert "condition" not in statement


@pytest.mark.req("FR-017")
def test_every_role_in_the_whole_stack_is_a_function_role_or_a_service_role():
    """Any other role (API Gateway's log role) is not assumable by Lambda."""
    for name in ("root", "data", "edge", "observability"):
        for role_name, body in module(name).of_type("aws_iam_role").items():
            document = expression(body["assume_role_policy"]).split(".")[2]
            assume = module(name).data[("aws_iam_policy_document", document)]
            assert "lambda.amazonaws.com" not in str(assume), f"{name}.{role_name}: a Lambda role outside the for_each"


@pytest.mark.req("FR-017", "FR-051")
def test_least_privilege_map_is_what_the_code_calls():
    for key, spec in stack()["functions"].items():
        iam = spec["iam"]
        expected = EXPECTED[key]
        assert iam.get("dynamodb", {}) == expected["dynamodb"], key
        for field in ("sns_publish", "secrets_read"):
            assert iam.get(field, []) == expected.get(field, []), f"{key}.{field}"
        for field in ("metric_namespace",):
            assert iam.get(field) == expected.get(field), f"{key}.{field}"
        assert iam.get("lambda_invoke", {}) == expected.get("lambda_invoke", {}), f"{key}.lambda_invoke"
        for flag in ("xray_read", "cloudwatch_read"):
            assert iam.get(flag, False) == expected.get(flag, False), f"{key}.{flag}"
        for table, grant in iam.get("dynamodb", {}).items():
            assert table in stack()["tables"]
            assert all("*" not in action for action in grant["actions"]), f"{key}: wildcard DynamoDB action"
            for resource in grant["resources"]:
                index = resource.removeprefix("index/")
                indexes = stack()["tables"][table]["global_secondary_indexes"]
                assert resource == "table" or index == "*" or index in indexes
        assert set(iam.get("sns_publish", [])) <= set(stack()["topics"])
        assert set(iam.get("secrets_read", [])) <= set(stack()["secrets"])


@pytest.mark.req("FR-017")
def test_policy_statements_follow_the_map():
    dynamo = dynamic_statement("DynamoDb")
    assert expression(dynamo["for_each"]) == "each.value.iam.dynamodb"
    content = str(dynamo["content"][0])
    assert '"dynamodb:${action}"' in content.replace("'", '"')
    assert 'r == "table" ? var.table_arns[statement.key] : "${var.table_arns[statement.key]}/${r}"' in content
    assert "var.topic_arns[topic]" in str(dynamic_statement("SnsPublish")["content"])
    assert "sns:Publish" in str(dynamic_statement("SnsPublish")["content"])
    assert "var.secret_arns[secret]" in str(dynamic_statement("SecretsRead")["content"])
    assert "secretsmanager:GetSecretValue" in str(dynamic_statement("SecretsRead")["content"])
    dlq = dynamic_statement("DeadLetterQueue")
    assert expression(dlq["for_each"]) == "each.value.dead_letter_queue == null ? [] : [each.value.dead_letter_queue]"
    assert dlq["content"][0]["actions"] == ["sqs:SendMessage"]
    assert "var.queue_arns[statement.value]" in str(dlq["content"])
    xray_read = dynamic_statement("XRayRead")
    assert expression(xray_read["for_each"]) == "each.value.iam.xray_read ? [1] : []"
    assert set(module(LAMBDA).locals["xray_read_actions"]) == {"xray:BatchGetTraces"}
    cw_read = dynamic_statement("CloudWatchRead")
    assert expression(cw_read["for_each"]) == "each.value.iam.cloudwatch_read ? [1] : []"
    assert set(module(LAMBDA).locals["cloudwatch_read_actions"]) == {"cloudwatch:GetMetricStatistics"}
    assert not [s for s in dynamic_statements() if "Ecr" in str(s["content"][0]["sid"])], \
        "Lambda pulls the image through the repository policy, not the execution role"
    dynamo = str(dynamic_statement("DynamoDb")["content"][0])
    assert "dynamodb:LeadingKeys" in dynamo and "ForAllValues:StringEquals" in dynamo
    assert "statement.value.leading_keys == null ? [] : [statement.value.leading_keys]" in dynamo
    invoke = dynamic_statement("Invoke")
    assert expression(invoke["for_each"]) == "each.value.iam.lambda_invoke"
    content = str(invoke["content"][0])
    assert '"lambda:${action}"' in content.replace("'", '"')
    assert "local.function_arns[statement.key]" in content and '${local.function_arns[statement.key]}:*' in content


@pytest.mark.req("FR-017")
def test_no_wildcard_actions_on_function_roles():
    mod = module(LAMBDA)
    actions = [action for name in ("xray_write_actions", "xray_read_actions", "cloudwatch_read_actions")
               for action in mod.locals[name]]
    for statement in [*static_statements().values(), *(d["content"][0] for d in dynamic_statements())]:
        if isinstance(statement["actions"], list):
            actions.extend(statement["actions"])
        else:
            assert expression(statement["actions"]).startswith(
                ("local.", "[for action in statement.value.actions", "[for action in statement.value :")), \
                statement["actions"]
    assert actions
    for action in actions:
        assert "*" not in action, f"wildcard action {action}"


@pytest.mark.req("FR-043", "FR-049")
def test_put_metric_data_is_limited_to_exactly_the_contract_namespaces():
    statement = dynamic_statement("PutMetricData")
    assert expression(statement["for_each"]) == \
        "each.value.iam.metric_namespace == null ? [] : [var.metric_namespaces[each.value.iam.metric_namespace]]"
    content = statement["content"][0]
    assert content["actions"] == ["cloudwatch:PutMetricData"]
    condition = content["condition"][0]
    assert condition["test"] == "StringEquals"
    assert condition["variable"] == "cloudwatch:namespace"
    assert expression(condition["values"]) == "[statement.value]" or condition["values"] == ["${statement.value}"]
    namespaces = stack()["metric_namespaces"]
    granted = {namespaces[f["iam"]["metric_namespace"]] for f in stack()["functions"].values()
               if f["iam"].get("metric_namespace")}
    assert granted == {m.namespace for m in contract_metrics().values()}
    assert "PutMetricData" not in str(static_statements()), "PutMetricData only through the namespace statement"


@pytest.mark.req("FR-043")
def test_every_emitter_may_write_its_metrics_namespace():
    namespaces = stack()["metric_namespaces"]
    for metric in contract_metrics().values():
        for key in metric.emitters:
            granted = stack()["functions"][key]["iam"].get("metric_namespace")
            assert granted and namespaces[granted] == metric.namespace, f"{key} cannot put {metric.name}"


@pytest.mark.req("FR-051")
def test_canary_is_apart_from_the_application():
    functions = stack()["functions"]
    canary = functions["canary"]["iam"]
    assert canary["metric_namespace"] == "canary"
    assert stack()["metric_namespaces"]["canary"] == "SentimentAnalyzer/Canary"
    for key, spec in functions.items():
        if key == "canary":
            continue
        assert spec["iam"].get("metric_namespace") != "canary", f"{key} may write the canary's namespace"
        assert not spec["iam"].get("xray_read") and not spec["iam"].get("cloudwatch_read"), key
        assert "canary_alerts" not in spec["iam"].get("sns_publish", []), key
    assert canary.get("sns_publish") == ["canary_alerts"]


@pytest.mark.req("FR-017")
def test_kms_use_only_through_the_stack_services():
    statement = dynamic_statement("StackKey")
    content = statement["content"][0]
    assert content["actions"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert expression(content["resources"][0]) == "var.kms_key_arn"
    assert content["condition"][0]["variable"] == "kms:ViaService"


@pytest.mark.req("FR-039", "FR-051")
def test_the_canary_reaches_its_alert_topic_key_through_sns_only():
    """Issue 16, finding 5: the alerting topics' own key, granted through SNS to their publishers."""
    statement = dynamic_statement("AlertsKey")["content"][0]
    assert statement["actions"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert expression(statement["resources"][0]) == "var.alerts_kms_key_arn"
    assert statement["condition"][0]["variable"] == "kms:ViaService"
    assert "setintersection(fn.iam.sns_publish, var.alerting_topics)" in str(module(LAMBDA).locals["publishes_alerts"])
