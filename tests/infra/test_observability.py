"""Sampling, X-Ray groups, billing alarms, the alarm set (generated from maps) and the dashboard."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

import pytest

from tests.infra.hcl import ENVIRONMENTS, TERRAFORM, block, contract_metrics, expression, module, stack, tfvars

OBS = "observability"
CONTRACT_ALARM = re.compile(
    r"^(?:(?P<stat>p\d+)\s+)?(?P<op>>=|>|<=|<)\s*(?P<threshold>[\d.]+)"
    r"(?:\s+over\s+(?P<minutes>\d+)\s+min)?(?:\s+for\s+(?P<of>\d+)\s+of\s+(?P<periods>\d+)\s+periods)?")
OPERATORS = {">=": "GreaterThanOrEqualToThreshold", ">": "GreaterThanThreshold", "<": "LessThanThreshold",
             "<=": "LessThanOrEqualToThreshold"}


def alarmed_metrics():
    return {name: m for name, m in contract_metrics().items() if m.alarm}


# ---------------------------------------------------------------- sampling (FR-034)
@pytest.mark.req("FR-034", "SC-013")
@pytest.mark.parametrize("environment", ["dev", "preprod"])
def test_dev_and_preprod_sample_everything(environment):
    values = tfvars(environment)
    assert values["xray_sampling_rate"] == 1.0
    assert values["xray_sampling_reservoir"] == 1


@pytest.mark.req("FR-034")
def test_prod_rate_is_a_validated_variable():
    values = tfvars("prod")
    assert 0 < values["xray_sampling_rate"] <= 1
    rules = [str(v["condition"]) for v in module("root").variables["xray_sampling_rate"]["validation"]]
    assert any("var.xray_sampling_rate >= 0 && var.xray_sampling_rate <= 1" in r for r in rules)
    assert any('var.environment == "prod" || var.xray_sampling_rate == 1' in r for r in rules), \
        "outside prod anything but 100 % must be refused"
    root = module("root").module_calls[OBS]
    assert expression(root["sampling_rate"]) == "var.xray_sampling_rate"
    assert expression(root["sampling_reservoir"]) == "var.xray_sampling_reservoir"


@pytest.mark.req("FR-034")
def test_sampling_rules_use_the_environment_rate():
    rule = module(OBS).of_type("aws_xray_sampling_rule")["this"]
    assert expression(rule["for_each"]) == "local.sampling_rules"
    assert expression(rule["fixed_rate"]) == "var.sampling_rate"
    assert expression(rule["reservoir_size"]) == "var.sampling_reservoir"
    assert rule["rule_name"] == "${local.short_prefix}-${each.key}"
    assert expression(rule["service_name"]) == "each.value.service_name"
    for env in ENVIRONMENTS:
        for key in module(OBS).locals["sampling_rules"]:
            assert len(f"sa-{env}-{key}") <= 32, "X-Ray rule names allow 32 characters"


def _render(pattern: str, env: str) -> str:
    edge = module("edge")
    api_name = str(edge.locals["api_name"]).replace("${var.name_prefix}", f"sentiment-analyzer-{env}")
    stage = edge.variables["stage_name"]["default"]
    return (pattern.replace("${var.name_prefix}", f"sentiment-analyzer-{env}")
            .replace("${var.api_name}", api_name).replace("${var.api_stage_name}", stage))


@pytest.mark.req("FR-034", "FR-035")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_sampling_service_names_match_our_api_stage_and_functions(environment):
    rules = module(OBS).locals["sampling_rules"]
    assert expression(module("root").module_calls[OBS]["api_name"]) == "module.edge.api_name"
    assert expression(module("edge").outputs["api_name"]["value"]) == "aws_api_gateway_rest_api.api.name"
    assert expression(module("edge").of_type("aws_api_gateway_rest_api")["api"]["name"]) == "local.api_name"
    api = _render(rules["api"]["service_name"], environment)
    assert rules["api"]["service_type"] == "AWS::ApiGateway::Stage"
    assert fnmatchcase(f"sentiment-analyzer-{environment}-api/live", api)
    for other in set(ENVIRONMENTS) - {environment}:
        assert not fnmatchcase(f"sentiment-analyzer-{other}-api/live", api), f"{environment} rule hits {other}"


@pytest.mark.req("FR-034")
def test_no_sampling_rule_that_no_consumer_reads():
    """Issue 16, finding 2: Lambda reads no sampling rules (first request each second, then 5 %),
    so the only rule is the API stage's, which API Gateway does read."""
    rules = module(OBS).locals["sampling_rules"]
    assert {r["service_type"] for r in rules.values()} == {"AWS::ApiGateway::Stage"}


# ---------------------------------------------------------------- groups (FR-034, FR-048, FR-019)
@pytest.mark.req("FR-034", "FR-048", "FR-019", "SC-013", "SC-020")
def test_xray_groups_for_faults_reconnections_and_canary():
    groups = module(OBS).locals["xray_groups"]
    scope = " AND (${local.environment_services})"
    assert groups["faults"] == {"filter": "(fault = true OR error = true)" + scope, "insights": True}
    assert groups["sse-reconnects"]["filter"] == "annotation.connection_sequence > 1" + scope
    assert groups["canary"]["filter"] == "annotation.canary_probe = true" + scope
    # Issue 16, finding 2: every group names this environment's services (the function names, which
    # are the service names Terraform sets, and the API stage), so dev and preprod never mix.
    services = expression(module(OBS).locals["environment_services"])
    assert "values(var.function_names)" in services and '"${var.api_name}/${var.api_stage_name}"' in services
    assert 'service(\\"${name}\\")' in services or 'service(\"${name}\")' in services
    resource = module(OBS).of_type("aws_xray_group")["this"]
    assert expression(resource["filter_expression"]) == "each.value.filter"
    insights = block(resource, "insights_configuration")[0]
    assert expression(insights["insights_enabled"]) == "each.value.insights"


# ---------------------------------------------------------------- billing (FR-038, SC-016)
@pytest.mark.req("FR-038", "SC-016")
def test_xray_billing_alarms_in_us_east_1():
    billing = module(OBS).of_type("aws_cloudwatch_metric_alarm")["billing"]
    assert expression(billing["provider"]) == "aws.us_east_1"
    assert billing["namespace"] == "AWS/Billing" and billing["metric_name"] == "EstimatedCharges"
    assert billing["dimensions"] == {"ServiceName": "AWSXRay", "Currency": "USD"}
    assert "var.billing_thresholds_usd" in str(billing["for_each"])
    assert module("root").variables["xray_billing_thresholds_usd"]["default"] == [10, 25, 50]
    assert expression(billing["alarm_actions"][0]) == "aws_sns_topic.us_east_1.arn"
    assert expression(module(OBS).of_type("aws_sns_topic")["us_east_1"]["provider"]) == "aws.us_east_1"
    assert tfvars("prod")["create_billing_alarms"] is True


# ---------------------------------------------------------------- alarms
def test_one_regional_alarm_resource_driven_by_the_alarm_map():
    alarms = module(OBS).of_type("aws_cloudwatch_metric_alarm")
    assert set(alarms) == {"this", "global", "billing"}
    assert expression(alarms["this"]["for_each"]) == "local.alarms"
    assert expression(alarms["global"]["for_each"]) == "local.global_alarms"
    assert expression(alarms["global"]["provider"]) == "aws.us_east_1", "CloudFront metrics live in us-east-1"
    merged = expression(module(OBS).locals["alarms"])
    assert merged == ("{for key, alarm in merge(local.function_alarms, local.custom_alarms, local.probe_alarms, "
                      "local.queue_alarms, local.api_alarms, local.xray_alarms, local.log_alarms) : "
                      "key => merge(local.alarm_defaults, alarm)}"), "every map's alarms over the shared defaults"
    defaults = module(OBS).locals["alarm_defaults"]
    assert (defaults["statistic"], defaults["threshold"], defaults["missing"]) == ("Sum", 1, "notBreaching")
    assert (defaults["evaluation_periods"], defaults["datapoints"]) == (1, 1)
    assert expression(defaults["period"]) == "var.alarm_period_s"
    assert defaults["comparison"] == "GreaterThanOrEqualToThreshold"
    for name in ("root", "data", "lambda_functions", "edge"):
        assert not module(name).of_type("aws_cloudwatch_metric_alarm"), f"alarms outside observability: {name}"


@pytest.mark.req("FR-039", "FR-045")
def test_every_alarm_notifies_the_alarms_topic():
    alarm = module(OBS).of_type("aws_cloudwatch_metric_alarm")["this"]
    assert [expression(a) for a in alarm["alarm_actions"]] == ["var.alarm_topic_arn"]
    assert alarm["actions_enabled"] is True
    assert expression(alarm["treat_missing_data"]) == "each.value.missing"
    assert expression(alarm["dimensions"]) == "each.value.dimensions"
    assert expression(module("root").module_calls[OBS]["alarm_topic_arn"]) == 'module.data.topic_arns["alarms"]'
    assert "alarms" in stack()["topics"]


@pytest.mark.req("FR-040", "FR-041", "FR-061", "SC-017")
def test_every_function_has_errors_and_p95_duration_at_80_percent_of_timeout():
    text = expression(module(OBS).locals["function_alarms"])
    assert 'for key, fn in var.functions : "${key}-errors"' in text
    assert 'for key, fn in var.functions : "${key}-duration"' in text
    assert 'metric = "Errors"' in text and 'metric = "Duration"' in text
    assert 'statistic = fn.duration_alarm == null ? "p95" : fn.duration_alarm.statistic' in text
    assert "threshold = fn.duration_alarm == null ? fn.timeout_s * 1000 * var.duration_alarm_ratio" in text
    assert text.count("dimensions = tomap({FunctionName = var.function_names[key]})") == 4
    ratio = module(OBS).variables["duration_alarm_ratio"]
    assert ratio["default"] == 0.8
    assert "var.duration_alarm_ratio >= 0.8 && var.duration_alarm_ratio <= 0.9" in str(ratio["validation"])
    assert expression(module("root").module_calls[OBS]["functions"]) == "local.stack.functions"
    assert len(stack()["functions"]) == 7


@pytest.mark.req("FR-041", "FR-061")
def test_duration_overrides_are_explained_and_still_warn_before_the_timeout():
    for key, spec in stack()["functions"].items():
        override = spec.get("duration_alarm")
        if override is None:
            continue
        assert key == "sse_streaming", f"{key}: only the stream lives to its deadline by design"
        timeout_ms = spec["timeout_s"] * 1000
        assert 0.8 * timeout_ms <= override["threshold_ms"] < timeout_ms
        margin_ms = float(spec["env"]["SSE_DEADLINE_MARGIN_S"]) * 1000
        assert override["threshold_ms"] > timeout_ms - margin_ms, "above the planned end of a stream"
        assert override["statistic"] in {"Maximum", "p99"} and len(override["reason"]) > 20


@pytest.mark.req("FR-042", "FR-043", "FR-045", "FR-020", "FR-036", "SC-018", "SC-019", "SC-014")
def test_every_contract_metric_has_its_alarm():
    table = module(OBS).locals["metric_alarms"]
    wanted = alarmed_metrics()
    assert set(table) == set(wanted), "the alarm map is exactly the contract's alarmed metrics"
    namespaces = stack()["metric_namespaces"]
    for name, metric in wanted.items():
        spec = table[name]
        assert sorted(spec["functions"]) == sorted(metric.emitters), name
        assert namespaces[spec["namespace"]] == metric.namespace, name
        assert spec["missing"] == metric.treat_missing_data, name
        parsed = CONTRACT_ALARM.match(metric.alarm)
        assert parsed, f"{name}: cannot read alarm {metric.alarm!r}"
        assert spec["comparison"] == OPERATORS[parsed["op"]], name
        assert float(spec["threshold"]) == float(parsed["threshold"]), name
        if parsed["stat"]:
            assert spec["statistic"] == parsed["stat"], name
        if parsed["minutes"]:
            assert spec["period"] * spec["evaluation_periods"] == int(parsed["minutes"]) * 60, name
        if parsed["periods"]:
            assert spec["evaluation_periods"] == int(parsed["periods"]) == int(parsed["of"]), name
    # the seven FR-042 metrics and the six FR-043 silent-path metrics are among them
    assert {"StuckItems", "EventLatencyMs", "MetricsLambdaErrors", "HighLatencyAlert",
            "PollDurationMs", "AnalysisErrors"} <= set(table)
    # ConnectionAcquireFailures cannot fire (one invocation per environment: issue 15) and has no alarm.
    assert "ConnectionAcquireFailures" not in table
    assert {"CircuitBreakerPersistenceFailure", "AuditEventPersistenceFailure", "DownstreamNotificationFailure",
            "TimeseriesFanoutPartialFailure", "SelfHealingItemFetchFailure", "ParallelFetcherErrors"} <= set(table)


@pytest.mark.req("FR-042", "FR-043", "FR-020")
def test_contract_metric_alarms_have_exactly_the_function_name_dimension():
    text = expression(module(OBS).locals["custom_alarms"])
    assert "for metric, spec in local.metric_alarms" in text and "for key in spec.functions" in text
    dimensions = re.findall(r"dimensions = (tomap\(\{.*?\}\))", text)
    assert dimensions == ["tomap({FunctionName = var.function_names[key]})"]
    assert "namespace = var.metric_namespaces[spec.namespace]" in text
    assert "datapoints = spec.evaluation_periods" in text, "N of N: every evaluated period must breach"


@pytest.mark.req("FR-020")
def test_canary_health_pages_after_two_missing_or_failed_periods():
    spec = module(OBS).locals["metric_alarms"]["CanaryHealth"]
    assert spec["missing"] == "breaching" and spec["evaluation_periods"] == 2
    assert spec["comparison"] == "LessThanThreshold" and spec["threshold"] == 1
    canary_schedule = stack()["functions"]["canary"]["trigger"]["expression"]
    minutes = int(re.search(r"rate\((\d+) minutes?\)", canary_schedule)[1])
    assert spec["period"] >= minutes * 60, "a period shorter than the schedule would breach on silence"


# ---------------------------------------------------------------- dashboard (FR-044, SC-022)
@pytest.mark.req("FR-044", "SC-022")
def test_alarm_widget_lists_the_whole_alarm_set():
    mod = module(OBS)
    arns = expression(mod.locals["alarm_arns"])
    for name in mod.of_type("aws_cloudwatch_metric_alarm"):
        assert f"aws_cloudwatch_metric_alarm.{name}" in arns, f"alarm resource {name} missing from the widget"
    body = expression(mod.of_type("aws_cloudwatch_dashboard")["this"]["dashboard_body"])
    assert 'type = "alarm"' in body
    assert "alarms = local.alarm_arns" in body
    assert "alarm_arns" in str(mod.outputs["alarm_arns"]["value"])


# ---------------------------------------------------------------- README: alarm count and cost
def probe_paths() -> list[str]:
    """The canary probe paths `probe_alarms` alarms (one alarm each)."""
    text = expression(module(OBS).locals["probe_alarms"])
    found = re.search(r"for path in \[([^\]]*)\]", text)
    assert found, text
    return re.findall(r'"([a-z]+)"', found[1])


@pytest.mark.req("FR-036", "FR-020", "SC-014")
def test_each_canary_probe_path_has_its_completeness_alarm():
    assert probe_paths() == ["batch", "stream"]  # lambdas/canary/tree_spec.py: BATCH_TREE, STREAM_TREE paths
    text = expression(module(OBS).locals["probe_alarms"])
    for fragment in ('metric = "ProbeTreeComplete"', 'ProbePath = path', 'statistic = "Average"',
                     "evaluation_periods = 2", "datapoints = 2", 'comparison = "LessThanThreshold"',
                     "threshold = 1", 'missing = "breaching"'):
        assert fragment in text, fragment


def expected_alarm_counts(environment: str) -> dict[str, int]:
    functions = len(stack()["functions"])
    billing = len(module("root").variables["xray_billing_thresholds_usd"]["default"])
    return {
        "errors": functions,
        "duration": functions,
        "contract": sum(len(m.emitters) for m in alarmed_metrics().values()),
        "throttles": functions,
        "dead_letter_errors": sum(1 for f in stack()["functions"].values() if f.get("dead_letter_queue")),
        "dlq": 2 * len(stack()["queues"]),
        "api": len(module(OBS).locals["api_alarms"]) + len(module(OBS).locals["global_alarms"]),
        "xray": 2,
        "probes": len(probe_paths()),
        "oom": 1,  # the SSE function's out-of-memory kills (log metric filter)
        "billing": billing if tfvars(environment)["create_billing_alarms"] else 0,
    }


@pytest.mark.req("FR-044", "FR-038")
@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_readme_counts_the_alarms_and_prices_them(environment):
    readme = (TERRAFORM / "README.md").read_text().split("\n## Alarms", 1)[1].split("\n## ", 1)[0]
    row = re.search(rf"^\|\s*{environment}\s*\|(.+)$", readme, re.M)
    assert row, f"README: no alarm row for {environment}"
    cells = [c.strip() for c in row[1].strip().strip("|").split("|")]
    counts = expected_alarm_counts(environment)
    order = ("errors", "throttles", "duration", "dead_letter_errors", "contract", "probes", "dlq", "api", "xray", "oom",
             "billing")
    numbers = [int(c) for c in cells[:len(order) + 1]]
    assert numbers[:len(order)] == [counts[k] for k in order]
    assert numbers[len(order)] == sum(counts.values()), "total"
    price = float(re.search(r"\$([\d.]+)", cells[len(order) + 1])[1])
    assert price == pytest.approx(sum(counts.values()) * 0.10), "standard alarms cost $0.10 a month each"



@pytest.mark.req("FR-042", "FR-045")
def test_new_items_ingested_is_a_heartbeat_of_reports_not_of_news():
    """Issue 16, finding 4: SampleCount counts the runs that reported (0 included)."""
    spec = module(OBS).locals["metric_alarms"]["NewItemsIngested"]
    assert spec["statistic"] == "SampleCount" and spec["missing"] == "breaching"
    assert spec["comparison"] == "LessThanThreshold" and spec["threshold"] == 1


@pytest.mark.req("FR-039", "FR-040", "FR-045", "SC-013")
def test_the_missing_alarms_exist_and_each_says_why():
    """Issue 16, finding 4: Throttles for every function, DeadLetterErrors, DLQ age beside depth, the
    SSE origin's 5xx, CloudFront's 5xx rate, the X-Ray group metrics; each with its one-line reason."""
    mod = module(OBS)
    functions = expression(mod.locals["function_alarms"])
    assert '"${key}-throttles"' in functions and 'metric = "Throttles"' in functions
    assert '"${key}-dead-letter-errors"' in functions and 'metric = "DeadLetterErrors"' in functions
    assert "if fn.dead_letter_queue != null" in functions
    queues = expression(mod.locals["queue_alarms"])
    assert 'metric = "ApproximateAgeOfOldestMessage"' in queues
    assert 'metric = "ApproximateNumberOfMessagesVisible"' in queues
    api = mod.locals["api_alarms"]
    assert api["sse-origin-5xx"]["metric"] == "Url5xxCount" and api["sse-origin-5xx"]["namespace"] == "AWS/Lambda"
    cloudfront = mod.locals["global_alarms"]["cloudfront-5xx-rate"]
    assert cloudfront["namespace"] == "AWS/CloudFront" and cloudfront["metric"] == "5xxErrorRate"
    xray = expression(mod.locals["xray_alarms"])
    assert '"ApproximateFaultCount", "ApproximateErrorCount"' in xray and 'namespace = "AWS/X-Ray"' in xray
    assert 'aws_xray_group.this["faults"].group_name' in xray
    for family in ("function_alarms", "custom_alarms", "queue_alarms", "xray_alarms"):
        text = expression(mod.locals[family])
        assert text.count("why") >= text.count("summary") > 0, family
    for table in ("api_alarms", "global_alarms", "metric_alarms"):
        for name, spec in mod.locals[table].items():
            missing = spec.get("missing", mod.locals["alarm_defaults"]["missing"])
            assert len(spec["why"]) > 30 and missing in spec["why"], f"{table}.{name}: why must justify missing data"
    for name in ("this", "global"):
        assert "Why: ${each.value.why}" in mod.of_type("aws_cloudwatch_metric_alarm")[name]["alarm_description"]


@pytest.mark.req("FR-044", "SC-022")
def test_the_dashboard_graphs_every_alarmed_metric_from_the_alarm_maps():
    """Issue 16, finding 4: custom metrics, canary, DLQs, API/edge, throttles and X-Ray groups are
    graphed from the same maps as the alarms (one graph per `widget` key)."""
    mod = module(OBS)
    graphed = expression(mod.locals["graphed_alarms"])
    assert "local.alarms" in graphed and "local.global_alarms" in graphed
    widgets = expression(mod.locals["alarm_metric_widgets"])
    assert "for i, title in local.graph_titles" in widgets and "if local.graphed_alarms[key].widget == title" in widgets
    body = expression(mod.of_type("aws_cloudwatch_dashboard")["this"]["dashboard_body"])
    assert "local.alarm_metric_widgets" in body
    source = (TERRAFORM / "modules" / "observability" / "alarms.tf").read_text()
    titles = set(re.findall(r'widget\s*=\s*"([^"]+)"', source))
    titles |= set(re.findall(r'"canary" \? "([^"]+)" : "([^"]+)"', source)[0])
    assert {"Application metrics", "Canary", "Dead-letter queues", "API, SSE origin and edge",
            "Lambda errors and throttles", "X-Ray groups"} <= titles
