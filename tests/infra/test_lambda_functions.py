"""The functions: one map (stack.json) drives them; tracing, packaging, names, env, DLQs, logs."""

from __future__ import annotations

import re

import pytest

from tests.infra.hcl import REPO, TERRAFORM, block, expression, module, stack

LAMBDA = "lambda_functions"


def functions_resource():
    return module(LAMBDA).of_type("aws_lambda_function")


@pytest.mark.req("FR-017", "SC-003")
def test_every_lambda_function_has_active_tracing():
    found = [(mod.name, name, body) for mod in [module(n) for n in ("root", "data", "lambda_functions", "edge",
                                                                     "observability")]
             for name, body in mod.of_type("aws_lambda_function").items()]
    assert found, "no aws_lambda_function at all"
    for mod_name, name, body in found:
        tracing = block(body, "tracing_config")
        assert tracing and tracing[0]["mode"] == "Active", f"{mod_name}.{name}: tracing must be Active"


@pytest.mark.req("FR-017", "SC-003")
def test_one_resource_for_every_function_of_the_map():
    resources = functions_resource()
    assert list(resources) == ["this"], "one aws_lambda_function, for_each over the map"
    assert expression(resources["this"]["for_each"]) == "var.functions"
    assert expression(module("root").module_calls[LAMBDA]["functions"]) == "local.stack.functions"
    assert len(stack()["functions"]) == 7


@pytest.mark.req("FR-017")
def test_function_names_are_project_env_key():
    root, mod = module("root"), module(LAMBDA)
    assert expression(root.locals["name_prefix"]) == "${local.project}-${var.environment}"
    assert expression(root.locals["project"]) == "local.stack.project"
    assert stack()["project"] == "sentiment-analyzer"
    assert "${var.name_prefix}-${key}" in str(mod.locals["function_names"])
    assert expression(functions_resource()["this"]["function_name"]) == "local.function_names[each.key]"


@pytest.mark.req("FR-062", "FR-070")
def test_packages_zip_from_src_or_image_by_digest():
    body = functions_resource()["this"]
    assert expression(body["package_type"]) == 'each.value.package == "image" ? "Image" : "Zip"'
    assert expression(body["handler"]) == 'each.value.package == "zip" ? each.value.handler : null'
    assert expression(body["image_uri"]) == "lookup(local.image_uris, each.key, null)"
    image_uris = str(module(LAMBDA).locals["image_uris"])
    assert "aws_ecr_repository.image[key].repository_url}@${var.sse_image_digest}" in image_uris
    assert "if fn.package == \"image\"" in str(module(LAMBDA).locals["image_functions"])
    assert {k for k, f in stack()["functions"].items() if f["package"] == "image"} == {"sse_streaming"}
    for key, spec in stack()["functions"].items():
        module_path = spec["handler"].rsplit(".", 1)[0].replace(".", "/")
        assert spec["handler"] == f"lambdas.{key}.handler.lambda_handler", key
        assert module_path == f"lambdas/{key}/handler"


@pytest.mark.req("FR-070")
def test_sse_image_digest_is_validated_as_sha256():
    rule = module("root").variables["sse_image_digest"]["validation"][0]["condition"]
    pattern = re.search(r'regex\("([^"]+)"', rule)[1]
    assert re.fullmatch(pattern, "sha256:" + "a1" * 32)
    for bad in ["latest", "sha256:abc", "sha256:" + "A1" * 32, "sha256:" + "a1" * 33, "v1.2.3"]:
        assert not re.fullmatch(pattern, bad), bad


@pytest.mark.req("FR-062")
def test_ecr_repository_is_immutable_and_scanned():
    repos = module(LAMBDA).of_type("aws_ecr_repository")
    assert repos, "no ECR repository for the image"
    for body in repos.values():
        assert body["image_tag_mutability"] == "IMMUTABLE"
        assert block(body, "image_scanning_configuration")[0]["scan_on_push"] is True


@pytest.mark.req("FR-047", "FR-071", "SC-030")
def test_service_names_powertools_everywhere_and_otel_equal_on_the_otel_function():
    mod = module(LAMBDA)
    # Issue 16, finding 2: the physical name, so each environment's services stay apart in X-Ray.
    assert expression(mod.locals["service_names"]) == "local.function_names"
    assert '"${var.name_prefix}-${key}"' in str(mod.locals["function_names"])
    env = expression(mod.locals["function_env"])
    assert "POWERTOOLS_SERVICE_NAME = local.service_names[key]" in env
    assert 'fn.package == "image" ? {OTEL_SERVICE_NAME = local.service_names[key]}' in env.replace("{ ", "{")
    body = functions_resource()["this"]
    assert expression(block(body, "environment")[0]["variables"]) == "local.function_env[each.key]"
    for key, spec in stack()["functions"].items():
        assert "POWERTOOLS_SERVICE_NAME" not in spec["env"] and "OTEL_SERVICE_NAME" not in spec["env"], \
            f"{key}: service names come from Terraform, never the map"


@pytest.mark.req("FR-046", "FR-068")
def test_no_otel_propagators_nor_exec_wrapper_anywhere():
    forbidden = ("OTEL_PROPAGATORS", "AWS_LAMBDA_EXEC_WRAPPER")
    # (tests/stack.tftest.hcl names both: it asserts Terraform's computed env has neither)
    paths = [p for p in TERRAFORM.rglob("*") if p.is_file() and ".terraform" not in p.parts
             and p.suffix in {".tf", ".tfvars", ".json", ".hcl", ".js", ".yaml"}
             and p.relative_to(TERRAFORM).parts[0] != "tests"]
    assert len(paths) > 20
    for path in paths:
        text = path.read_text()
        for name in forbidden:
            assert name not in text, f"{path.relative_to(TERRAFORM)} names {name}"
    for key, spec in stack()["functions"].items():
        assert not set(spec["env"]) & set(forbidden), key


@pytest.mark.req("FR-017")
def test_env_references_resolve_to_map_resources():
    """table:/topic:/queue:/secret: values name entries of the map; Terraform resolves exactly those kinds."""
    kinds = {"table": "tables", "topic": "topics", "queue": "queues", "secret": "secrets"}
    resolver = str(module(LAMBDA).locals["references"])
    for kind, source in {"table": "var.table_names", "topic": "var.topic_arns", "queue": "var.queue_urls",
                         "secret": "var.secret_names"}.items():
        assert re.search(rf"['\"]?{kind}['\"]?\s*[:=]\s*['\"]?\$?\{{?{re.escape(source)}", resolver), kind
    resolved = str(module(LAMBDA).locals["resolved_env"])
    assert "^(table|topic|queue|secret):" in resolved
    assert 'replace(value, "$${env}", var.environment)' in resolved
    for key, spec in stack()["functions"].items():
        for name, value in spec["env"].items():
            kind, sep, target = value.partition(":")
            if sep and kind in kinds:
                assert target in stack()[kinds[kind]], f"{key}.{name}: {value} names nothing"


@pytest.mark.req("FR-017")
def test_dead_letter_queues_where_the_map_says():
    body = functions_resource()["this"]
    dlq = block(body, "dynamic")
    dlq = [d["dead_letter_config"] for d in dlq if "dead_letter_config" in d]
    assert dlq, "no dead_letter_config"
    wanted_for_each = "each.value.dead_letter_queue == null ? [] : [each.value.dead_letter_queue]"
    assert expression(dlq[0]["for_each"]) == wanted_for_each
    assert "var.queue_arns[dead_letter_config.value]" in str(dlq[0]["content"])
    wanted = {k: f["dead_letter_queue"] for k, f in stack()["functions"].items() if "dead_letter_queue" in f}
    assert wanted == {"analysis": "analysis_dlq", "notification": "notification_dlq"}
    assert set(wanted.values()) <= set(stack()["queues"])


@pytest.mark.req("FR-017")
def test_log_group_per_function_with_retention():
    groups = module(LAMBDA).of_type("aws_cloudwatch_log_group")
    assert expression(groups["this"]["for_each"]) == "var.functions"
    assert groups["this"]["name"] == "/aws/lambda/${local.function_names[each.key]}"
    assert expression(groups["this"]["retention_in_days"]) == "var.log_retention_days"
    assert "aws_cloudwatch_log_group.this" in str(functions_resource()["this"]["depends_on"])


@pytest.mark.req("FR-013")
def test_every_trigger_of_the_map_is_wired():
    mod, edge = module(LAMBDA), module("edge")
    triggers = {f["trigger"]["type"] for f in stack()["functions"].values()}
    assert triggers == {"schedule", "sns", "api_gateway", "function_url"}
    assert 'fn.trigger.type == "schedule"' in str(mod.locals["scheduled"])
    assert 'fn.trigger.type == "sns"' in str(mod.locals["subscribed"])
    rule = mod.of_type("aws_cloudwatch_event_rule")["schedule"]
    assert expression(rule["schedule_expression"]) == "each.value.trigger.expression"
    subscription = mod.of_type("aws_sns_topic_subscription")["trigger"]
    assert subscription["protocol"] == "lambda"
    assert expression(subscription["topic_arn"]) == "var.topic_arns[each.value.trigger.topic]"
    for key, spec in stack()["functions"].items():
        trigger = spec["trigger"]
        if trigger["type"] == "sns":
            assert stack()["topics"][trigger["topic"]]["tracing"] == "Active", f"{key}: SNS hop must be traced"
        if trigger["type"] == "function_url":
            url = edge.of_type("aws_lambda_function_url")["sse"]
            assert url["invoke_mode"] == trigger["invoke_mode"] == "RESPONSE_STREAM"
    assert expression(module("root").module_calls["edge"]["dashboard_invoke_arn"]) == \
        'module.lambda_functions.alias_invoke_arns["dashboard"]'
    assert expression(module("root").module_calls["edge"]["sse_function_name"]) == \
        'module.lambda_functions.function_names["sse_streaming"]'



@pytest.mark.req("FR-062", "FR-070")
def test_image_repository_and_architecture_match_the_sse_build():
    """docker/sse/deploy.sh pushes to the repository Terraform creates; the collector it embeds is
    built for the architecture the function runs on."""
    deploy = (REPO / "docker" / "sse" / "deploy.sh").read_text()
    default = re.search(r"ECR_REPOSITORY:-([^}]+)\}", deploy)
    assert default, "deploy.sh: no default ECR_REPOSITORY"
    repo = module(LAMBDA).of_type("aws_ecr_repository")["image"]
    assert repo["name"] == "${var.name_prefix}-sse"
    assert default[1].replace("$environment", "${var.environment}") == \
        repo["name"].replace("${var.name_prefix}", "sentiment-analyzer-${var.environment}")
    lock = (REPO / "docker" / "sse" / "collector-layer.lock").read_text()
    layer_arch = re.search(r"aws-otel-collector-(amd64|arm64)", lock)[1]
    architecture = module("root").variables["lambda_architecture"]["default"]
    assert {"amd64": "x86_64", "arm64": "arm64"}[layer_arch] == architecture
    # Issue 16, finding 6: no architecture is allowed that the lock has no collector pin for.
    pinned = {{"amd64": "x86_64", "arm64": "arm64"}[a] for a in re.findall(r"aws-otel-collector-(amd64|arm64)", lock)}
    for mod_name, var_name in (("root", "lambda_architecture"), (LAMBDA, "architecture")):
        rule = str(module(mod_name).variables[var_name]["validation"])
        allowed = set(re.findall(r'"(x86_64|arm64)"', rule.split("error_message")[0]))
        assert allowed == pinned, f"{mod_name}.{var_name} allows {allowed}, the collector is pinned for {pinned}"
    body = functions_resource()["this"]
    command = next(d["image_config"] for d in block(body, "dynamic") if "image_config" in d)
    assert "each.value.handler" in str(command["for_each"]), "the image's bootstrap reads _HANDLER from the command"


@pytest.mark.req("FR-017")
def test_every_function_runs_a_published_version_behind_its_alias():
    """Issue 16, finding 6: publish, one alias per function, and every trigger invokes the alias."""
    mod = module(LAMBDA)
    assert functions_resource()["this"]["publish"] is True
    alias = mod.of_type("aws_lambda_alias")["this"]
    assert expression(alias["for_each"]) == "var.functions"
    assert expression(alias["function_version"]) == "aws_lambda_function.this[each.key].version"
    assert expression(alias["name"]) == "var.alias_name"
    assert expression(module("root").module_calls[LAMBDA]["alias_name"]) == "local.stack.function_alias"
    alias_arn = "aws_lambda_alias.this[each.key].arn"
    assert expression(mod.of_type("aws_cloudwatch_event_target")["schedule"]["arn"]) == alias_arn
    assert expression(mod.of_type("aws_sns_topic_subscription")["trigger"]["endpoint"]) == alias_arn
    for name in ("schedule", "sns"):
        qualifier = mod.of_type("aws_lambda_permission")[name]["qualifier"]
        assert expression(qualifier) == "aws_lambda_alias.this[each.key].name"
    assert expression(module("edge").of_type("aws_lambda_function_url")["sse"]["qualifier"]) == "var.function_alias"


@pytest.mark.req("FR-062")
def test_the_image_function_waits_for_its_repository_policy_and_names_its_partition():
    """Issue 16, finding 6: Lambda's first pull needs the repository policy; no hard-coded partition."""
    body = functions_resource()["this"]
    assert "aws_ecr_repository_policy.image" in [expression(d) for d in body["depends_on"]]
    from tests.infra.hcl import modules
    for mod in modules().values():
        for path, parsed in mod.files.items():
            text = str({k: v for k, v in parsed.items() if k != "variable"})
            assert "arn:aws:" not in text and "arn:*:" not in text, f"{mod.name}/{path}: hard-coded partition"
