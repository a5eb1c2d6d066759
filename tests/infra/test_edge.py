"""The edge: API Gateway (X-Ray, access logs, CORS), the SSE Function URL (streaming, CORS),
CloudFront with the Sampled-stripping function in front of both (FR-035)."""

from __future__ import annotations

import ast
import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.hcl import MODULES, REPO, block, expression, module, stack

EDGE = "edge"
FUNCTIONS_DIR = MODULES / "edge" / "functions"
ALLOW = {"X-Amzn-Trace-Id", "Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id",
         "X-SSE-Connection-Sequence", "Authorization", "Content-Type", "X-Auth-Token"}


def resources(rtype):
    return module(EDGE).of_type(rtype)


@pytest.mark.req("FR-017", "SC-001")
def test_stage_traces_with_xray_and_writes_access_logs():
    stage = resources("aws_api_gateway_stage")["api"]
    assert stage["xray_tracing_enabled"] is True
    logs = block(stage, "access_log_settings")[0]
    assert expression(logs["destination_arn"]) == "aws_cloudwatch_log_group.api_access.arn"
    assert "$context.xrayTraceId" in str(logs["format"])
    retention = resources("aws_cloudwatch_log_group")["api_access"]["retention_in_days"]
    assert expression(retention) == "var.log_retention_days"


@pytest.mark.req("SC-001")
def test_api_v2_proxy_goes_to_the_dashboard_lambda():
    res = resources("aws_api_gateway_resource")
    assert [res[k]["path_part"] for k in ("api", "v2", "proxy")] == ["api", "v2", "{proxy+}"]
    assert expression(res["v2"]["parent_id"]) == "aws_api_gateway_resource.api.id"
    assert expression(res["proxy"]["parent_id"]) == "aws_api_gateway_resource.v2.id"
    methods = expression(module(EDGE).locals["api_methods"])
    assert '{"proxy/ANY" = {resource = "proxy", method = "ANY", authorized = false}}' in methods
    assert "local.alert_methods : key => merge(route, {authorized = true})" in methods
    assert expression(module(EDGE).locals["api_resource_ids"]["proxy"]) == "aws_api_gateway_resource.proxy.id"
    method = resources("aws_api_gateway_method")["route"]
    assert expression(method["for_each"]) == "local.api_methods"
    assert expression(method["http_method"]) == "each.value.method"
    assert expression(method["authorization"]) == 'each.value.authorized ? "COGNITO_USER_POOLS" : "NONE"'
    integration = resources("aws_api_gateway_integration")["route"]
    assert expression(integration["for_each"]) == "local.api_methods"
    assert integration["type"] == "AWS_PROXY" and integration["integration_http_method"] == "POST"
    assert expression(integration["uri"]) == "var.dashboard_invoke_arn"
    assert expression(module("root").module_calls[EDGE]["dashboard_invoke_arn"]) == \
        'module.lambda_functions.alias_invoke_arns["dashboard"]'
    assert expression(resources("aws_lambda_permission")["api"]["qualifier"]) == "var.function_alias"
    permission = resources("aws_lambda_permission")["api"]
    assert permission["principal"] == "apigateway.amazonaws.com"
    assert "/*/*/api/v2/*" in permission["source_arn"]


@pytest.mark.req("FR-015", "FR-082", "SC-037")
def test_cors_allows_the_trace_and_sse_headers_and_exposes_the_trace_id():
    locals_ = module(EDGE).locals
    assert set(locals_["cors_allow_headers"]) == ALLOW
    assert "x-amzn-trace-id" in [h.lower() for h in locals_["cors_expose_headers"]]
    headers = str(locals_["cors_api_headers"])
    for name, source in [("Access-Control-Allow-Headers", "local.cors_allow_headers"),
                         ("Access-Control-Expose-Headers", "local.cors_expose_headers")]:
        assert name in headers and source in headers


@pytest.mark.req("FR-015", "FR-082")
def test_options_and_gateway_responses_carry_the_cors_headers():
    options = resources("aws_api_gateway_integration")["preflight"]
    assert options["type"] == "MOCK"
    preflight = resources("aws_api_gateway_method")["preflight"]
    assert preflight["http_method"] == "OPTIONS" and preflight["authorization"] == "NONE"
    for kind in ("aws_api_gateway_method", "aws_api_gateway_integration", "aws_api_gateway_method_response",
                 "aws_api_gateway_integration_response"):
        assert expression(resources(kind)["preflight"]["for_each"]) == "local.api_resource_ids", kind
    assert set(module(EDGE).locals["api_resource_ids"]) == {"proxy", "alerts", "alert"}
    response = resources("aws_api_gateway_integration_response")["preflight"]
    assert "local.cors_api_headers" in str(response["response_parameters"])
    assert "method.response.header." in str(response["response_parameters"])
    gateway = resources("aws_api_gateway_gateway_response")["cors"]
    assert "DEFAULT_4XX" in str(gateway["for_each"]) and "DEFAULT_5XX" in str(gateway["for_each"])
    assert "local.cors_api_headers" in str(gateway["response_parameters"])
    assert "gatewayresponse.header." in str(gateway["response_parameters"])


@pytest.mark.req("SC-001")
def test_the_methods_keep_their_addresses_from_before_the_map():
    """An applied stack keeps its methods, integrations and stage settings: `moved` blocks map the
    former single resources (proxy_*, all) and alert-only maps (alerts, alerts_options, writes)."""
    moves = module(EDGE).moves
    alert_routes = list(module(EDGE).locals["alert_methods"])
    for kind in ("aws_api_gateway_method", "aws_api_gateway_integration"):
        assert moves[f"{kind}.proxy_any"] == f'{kind}.route["proxy/ANY"]'
        for key in alert_routes:
            assert moves[f'{kind}.alerts["{key}"]'] == f'{kind}.route["{key}"]'
    for kind in ("aws_api_gateway_method", "aws_api_gateway_integration", "aws_api_gateway_method_response",
                 "aws_api_gateway_integration_response"):
        assert moves[f"{kind}.proxy_options"] == f'{kind}.preflight["proxy"]'
        for key in ("alerts", "alert"):
            assert moves[f'{kind}.alerts_options["{key}"]'] == f'{kind}.preflight["{key}"]'
    settings = "aws_api_gateway_method_settings"
    assert moves[f"{settings}.all"] == f'{settings}.this["all"]'
    for key in ("create", "delete"):
        assert moves[f'{settings}.writes["{key}"]'] == f'{settings}.this["{key}"]'
    throttles = module(EDGE).locals["method_throttles"]
    assert throttles["all"]["method_path"] == "*/*"
    assert expression(throttles["create"]["rate_limit"]) == "var.write_throttling_rate_limit"


@pytest.mark.req("FR-015", "FR-082", "SC-037")
def test_sse_function_url_streams_with_the_same_cors():
    url = resources("aws_lambda_function_url")["sse"]
    assert url["invoke_mode"] == "RESPONSE_STREAM"
    cors = block(url, "cors")[0]
    assert expression(cors["allow_headers"]) == "local.cors_allow_headers"
    assert expression(cors["expose_headers"]) == "local.cors_expose_headers"
    assert expression(url["function_name"]) == "var.sse_function_name"


@pytest.mark.req("FR-035")
def test_cloudfront_function_strips_sampling_in_front_of_api_and_sse():
    function = resources("aws_cloudfront_function")["strip_sampling"]
    assert function["runtime"] == "cloudfront-js-2.0"
    assert function["publish"] is True
    assert expression(function["code"]) == 'file("${path.module}/functions/strip_sampling.js")'
    assert (FUNCTIONS_DIR / "strip_sampling.js").is_file()
    behaviours = module(EDGE).locals["dynamic_behaviors"]
    origins = {b["origin"] for b in behaviours}
    assert origins == {"${local.sse_origin_id}", "${local.api_origin_id}"}
    assert {"/api/v2/*", "/api/v2/stream*", "/api/v2/configurations/*/stream"} == {b["path"] for b in behaviours}
    distribution = resources("aws_cloudfront_distribution")["edge"]
    ordered = next(d["ordered_cache_behavior"] for d in block(distribution, "dynamic") if "ordered_cache_behavior" in d)
    assert expression(ordered["for_each"]) == "local.dynamic_behaviors"
    association = block(ordered["content"][0], "function_association")[0]
    assert association["event_type"] == "viewer-request"
    assert expression(association["function_arn"]) == "aws_cloudfront_function.strip_sampling.arn"
    origin_ids = {expression(o["origin_id"]) for o in block(distribution, "origin")}
    assert {"local.api_origin_id", "local.sse_origin_id", "local.frontend_origin_id"} == origin_ids


@pytest.mark.req("FR-035")
def test_strip_sampling_function_behaves_under_node():
    """The CloudFront Function's own tests (node --test), so `make test` runs them."""
    node = shutil.which("node")
    assert node, "node is needed (the frontend's tests need it too)"
    result = subprocess.run([node, "--test", str(FUNCTIONS_DIR / "strip_sampling.test.js")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and "# pass 0" not in result.stdout


@pytest.mark.req("FR-035")
def test_the_frontend_bucket_is_private_behind_cloudfront():
    block_public = resources("aws_s3_bucket_public_access_block")["frontend"]
    assert all(block_public[k] is True for k in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                                                  "restrict_public_buckets"))
    policy = str(module(EDGE).data[("aws_iam_policy_document", "frontend")])
    assert "cloudfront.amazonaws.com" in policy and "aws_cloudfront_distribution.edge.arn" in policy


def _module_constants(path: Path) -> dict[str, object]:
    constants: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            with contextlib.suppress(ValueError):
                constants[node.targets[0].id] = ast.literal_eval(node.value)
    return constants


@pytest.mark.req("FR-015", "FR-082", "SC-037")
def test_gateway_cors_agrees_with_the_dashboard_resolver():
    """OPTIONS and gateway errors answer what the dashboard Lambda itself answers."""
    api = _module_constants(REPO / "src" / "lambdas" / "dashboard" / "api.py")
    locals_ = module(EDGE).locals
    assert set(api["CORS_ALLOW_HEADERS"]) == set(locals_["cors_allow_headers"])
    assert str(api["TRACE_RESPONSE_HEADER"]).lower() in [h.lower() for h in locals_["cors_expose_headers"]]
    assert api["CORS_MAX_AGE_S"] == locals_["cors_max_age_s"]
    assert stack()["functions"]["dashboard"]["env"]["CORS_ALLOW_ORIGINS"] == \
        module("root").variables["cors_allow_origin"]["default"]
    # Issue 16, finding 6: in AWS the map's literal gives way to var.cors_allow_origin.
    env = expression(module("lambda_functions").locals["function_env"])
    assert 'contains(keys(fn.env), "CORS_ALLOW_ORIGINS") ? {CORS_ALLOW_ORIGINS = var.cors_allow_origin} : {}' in env
    assert expression(module("root").module_calls["lambda_functions"]["cors_allow_origin"]) == "var.cors_allow_origin"


@pytest.mark.req("FR-035")
def test_the_sse_origin_answers_only_this_distribution():
    """Issue 16, finding 3: AWS_IAM on the Function URL, CloudFront signing through origin access
    control for Lambda, and Lambda permissions for that distribution only (no public statement).
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-lambda.html"""
    url = resources("aws_lambda_function_url")["sse"]
    assert url["authorization_type"] == "AWS_IAM"
    assert expression(url["qualifier"]) == "var.function_alias"
    oac = resources("aws_cloudfront_origin_access_control")["sse"]
    assert oac["origin_access_control_origin_type"] == "lambda" and oac["signing_behavior"] == "always"
    origins = {expression(o["origin_id"]): o for o in block(resources("aws_cloudfront_distribution")["edge"], "origin")}
    assert expression(origins["local.sse_origin_id"]["origin_access_control_id"]) == \
        "aws_cloudfront_origin_access_control.sse.id"
    permission = resources("aws_lambda_permission")["sse_cloudfront"]
    assert set(expression(permission["for_each"]).removeprefix("toset(").removesuffix(")")
               .strip("[]").replace('"', "").replace(" ", "").split(",")) == \
        {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    assert permission["principal"] == "cloudfront.amazonaws.com"
    assert expression(permission["source_arn"]) == "aws_cloudfront_distribution.edge.arn"
    assert expression(permission["qualifier"]) == "var.function_alias"
    assert not resources("aws_cloudcontrolapi_resource"), "no public InvokeFunction statement any more"
    for mod_name in ("root", "data", "lambda_functions", "edge", "observability"):
        for name, body in module(mod_name).of_type("aws_lambda_permission").items():
            assert body.get("principal") != "*", f"{mod_name}.{name}: a public Lambda permission"


@pytest.mark.req("FR-035")
def test_the_api_answers_only_requests_carrying_the_edge_header():
    """Issue 16, finding 3: CloudFront adds the map's secret header to every API request; a regional
    web ACL on the stage blocks everything else, before API Gateway's own access controls.
    https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html"""
    header = stack()["edge"]["origin_verify_header"]
    origin_verify_header = module("root").module_calls[EDGE]["origin_verify_header"]
    assert expression(origin_verify_header) == "local.stack.edge.origin_verify_header"
    origins = {expression(o["origin_id"]): o for o in block(resources("aws_cloudfront_distribution")["edge"], "origin")}
    custom = block(origins["local.api_origin_id"], "custom_header")
    assert [expression(h["name"]) for h in custom] == ["var.origin_verify_header"]
    assert expression(custom[0]["value"]) == "aws_secretsmanager_secret_version.origin_verify.secret_string"
    acl = resources("aws_wafv2_web_acl")["api"]
    assert acl["scope"] == "REGIONAL"
    assert list(block(acl, "default_action")[0]) == ["block"], "everything not from CloudFront is blocked"
    rule = block(acl, "rule")[0]
    assert list(block(rule, "action")[0]) == ["allow"]
    match = block(block(rule, "statement")[0], "byte_match_statement")[0]
    assert match["positional_constraint"] == "EXACTLY"
    assert expression(match["search_string"]) == "aws_secretsmanager_secret_version.origin_verify.secret_string"
    assert expression(block(block(match, "field_to_match")[0], "single_header")[0]["name"]) == \
        "lower(var.origin_verify_header)"
    association = resources("aws_wafv2_web_acl_association")["api"]
    assert expression(association["resource_arn"]) == "aws_api_gateway_stage.api.arn"
    assert expression(association["web_acl_arn"]) == "aws_wafv2_web_acl.api.arn"
    assert not header.lower().startswith("x-amz"), "CloudFront refuses X-Amz-* custom headers"


@pytest.mark.req("FR-017")
def test_the_edge_module_is_split_by_concern():
    """Issue 20: api gateway, SSE origin, frontend bucket and CloudFront each in their own file."""
    files = {path.name for path in (MODULES / "edge").glob("*.tf")}
    assert {"api_gateway.tf", "sse_origin.tf", "frontend.tf", "cloudfront.tf"} <= files
    placed = {
        "api_gateway.tf": ("aws_api_gateway_", "aws_wafv2_"),
        "sse_origin.tf": ("aws_lambda_function_url", "aws_cloudfront_origin_access_control"),
        "frontend.tf": ("aws_s3_bucket",),
        "cloudfront.tf": ("aws_cloudfront_distribution", "aws_cloudfront_function"),
    }
    for filename, prefixes in placed.items():
        parsed = module(EDGE).files[filename]
        types = {rtype for entry in parsed.get("resource", []) for rtype in entry}
        assert types and any(rtype.startswith(prefixes) for rtype in types), filename
    # the concerns that must not spill into main.tf (shared lookups and CORS only)
    main = module(EDGE).files["main.tf"]
    assert not main.get("resource"), "main.tf holds resources: put them in the file of their concern"


@pytest.mark.req("FR-010")
def test_the_frontend_bucket_holds_the_pages_config_linking_trace_ids_to_the_regions_console():
    config = resources("aws_s3_object")["frontend_config"]
    assert expression(config["bucket"]) == "aws_s3_bucket.frontend.id"
    assert config["key"] == "config.json" and config["content_type"] == "application/json"
    # frontend/src/trace-links.ts parses exactly this shape (tests/e2e serves it to the page).
    content = str(config["content"])
    assert "jsonencode" in content and "traceLinks" in content
    assert "cloudwatch" in content and "local.region" in content
