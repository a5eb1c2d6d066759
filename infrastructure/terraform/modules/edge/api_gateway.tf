resource "aws_api_gateway_rest_api" "api" {
  name        = local.api_name
  description = "Dashboard JSON API (/api/v2/*)"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "api" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_rest_api.api.root_resource_id
  path_part   = "api"
}

resource "aws_api_gateway_resource" "v2" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_resource.api.id
  path_part   = "v2"
}

resource "aws_api_gateway_resource" "proxy" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_resource.v2.id
  path_part   = "{proxy+}"
}

# Every method of the API, one resource each kind (for_each): the public proxy's ANY (the dashboard
# validates its own input and answers 400/404/405/413 itself) and the alert routes' methods behind
# the Cognito authorizer (alerts_api.tf).
locals {
  # resource key => resource id: every resource with methods.
  api_resource_ids = {
    proxy  = aws_api_gateway_resource.proxy.id
    alerts = aws_api_gateway_resource.alerts.id
    alert  = aws_api_gateway_resource.alert.id
  }
  # "<resource key>/<METHOD>" => the method; `authorized`: needs a Cognito ID token.
  api_methods = merge(
    { "proxy/ANY" = { resource = "proxy", method = "ANY", authorized = false } },
    { for key, route in local.alert_methods : key => merge(route, { authorized = true }) },
  )
}

resource "aws_api_gateway_method" "route" {
  for_each = local.api_methods

  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = local.api_resource_ids[each.value.resource]
  http_method   = each.value.method
  authorization = each.value.authorized ? "COGNITO_USER_POOLS" : "NONE"
  authorizer_id = each.value.authorized ? aws_api_gateway_authorizer.cognito.id : null
}

resource "aws_api_gateway_integration" "route" {
  for_each = local.api_methods

  rest_api_id             = aws_api_gateway_rest_api.api.id
  resource_id             = local.api_resource_ids[each.value.resource]
  http_method             = aws_api_gateway_method.route[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = var.dashboard_invoke_arn
}

# Preflight on every resource, answered by API Gateway itself (the CORS preflight carries no token),
# with the same CORS as the dashboard's resolver.
resource "aws_api_gateway_method" "preflight" {
  for_each = local.api_resource_ids

  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = each.value
  http_method   = "OPTIONS"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "preflight" {
  for_each = local.api_resource_ids

  rest_api_id       = aws_api_gateway_rest_api.api.id
  resource_id       = each.value
  http_method       = aws_api_gateway_method.preflight[each.key].http_method
  type              = "MOCK"
  request_templates = { "application/json" = "{\"statusCode\": 200}" }
}

resource "aws_api_gateway_method_response" "preflight" {
  for_each = local.api_resource_ids

  rest_api_id         = aws_api_gateway_rest_api.api.id
  resource_id         = each.value
  http_method         = aws_api_gateway_method.preflight[each.key].http_method
  status_code         = "200"
  response_parameters = { for name, value in local.cors_api_headers : "method.response.header.${name}" => true }
}

resource "aws_api_gateway_integration_response" "preflight" {
  for_each = local.api_resource_ids

  rest_api_id         = aws_api_gateway_rest_api.api.id
  resource_id         = each.value
  http_method         = aws_api_gateway_method.preflight[each.key].http_method
  status_code         = aws_api_gateway_method_response.preflight[each.key].status_code
  response_parameters = { for name, value in local.cors_api_headers : "method.response.header.${name}" => value }

  depends_on = [aws_api_gateway_integration.preflight]
}

# Errors API Gateway produces itself (throttling, missing route, integration failure) carry CORS too,
# so the browser can read them and their x-amzn-trace-id.
resource "aws_api_gateway_gateway_response" "cors" {
  for_each = toset(["DEFAULT_4XX", "DEFAULT_5XX"])

  rest_api_id         = aws_api_gateway_rest_api.api.id
  response_type       = each.key
  response_parameters = { for name, value in local.cors_api_headers : "gatewayresponse.header.${name}" => value }
}

resource "aws_api_gateway_deployment" "api" {
  rest_api_id = aws_api_gateway_rest_api.api.id

  triggers = {
    redeployment = sha1(jsonencode([
      local.api_resource_ids,
      [for m in aws_api_gateway_method.route : m.id],
      [for i in aws_api_gateway_integration.route : i.id],
      [for m in aws_api_gateway_method.preflight : m.id],
      [for i in aws_api_gateway_integration.preflight : i.id],
      [for i in aws_api_gateway_integration_response.preflight : i.id],
      local.cors_api_headers,
      [for r in aws_api_gateway_gateway_response.cors : r.response_parameters],
      aws_api_gateway_authorizer.cognito.id,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${local.api_name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_api_gateway_stage" "api" {
  rest_api_id          = aws_api_gateway_rest_api.api.id
  deployment_id        = aws_api_gateway_deployment.api.id
  stage_name           = var.stage_name
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      xrayTraceId        = "$context.xrayTraceId"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      path               = "$context.path"
      status             = "$context.status"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      errorMessage       = "$context.error.message"
      sourceIp           = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
    })
  }

  depends_on = [aws_api_gateway_account.this]
}

# Stage method settings: the stage-wide throttle ("*/*") and, lower, the writes' own (alerts_api.tf).
resource "aws_api_gateway_method_settings" "this" {
  for_each = local.method_throttles

  rest_api_id = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  method_path = each.value.method_path

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    caching_enabled        = false
    cache_data_encrypted   = true
    throttling_rate_limit  = each.value.rate_limit
    throttling_burst_limit = each.value.burst_limit
  }

  depends_on = [aws_api_gateway_method.route]
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayV2Routes"
  action        = "lambda:InvokeFunction"
  function_name = var.dashboard_function_name
  qualifier     = var.function_alias
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.api.execution_arn}/*/*/api/v2/*"
}

# Account-level: API Gateway needs a role to write access and execution logs.
resource "aws_iam_role" "api_gateway_logs" {
  count = var.manage_api_gateway_account ? 1 : 0

  name               = "${var.name_prefix}-apigw-logs"
  assume_role_policy = data.aws_iam_policy_document.assume_api_gateway.json
}

data "aws_iam_policy_document" "assume_api_gateway" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "api_gateway_logs" {
  count = var.manage_api_gateway_account ? 1 : 0

  role       = aws_iam_role.api_gateway_logs[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_logs[0].arn
}


# ---------------------------------------------------------------- only through CloudFront
# The stage's default execute-api endpoint stays reachable (a custom domain would need a certificate),
# so CloudFront adds a secret header and a regional web ACL on the stage blocks every request without
# it. AWS WAF evaluates a request before API Gateway's other access controls (resource policy, IAM,
# authorizers): https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html
# AWS does not document whether the stage still records an X-Ray segment for a request WAF blocked;
# the conservative reading (README, "Edge") is that it may, under the stage's own sampling rule (the
# client's Sampled=1 never decides: a blocked request reaches no integration and no Lambda).
resource "aws_secretsmanager_secret" "origin_verify" {
  name                    = "${var.name_prefix}-origin-verify"
  description             = "Value of ${var.origin_verify_header}: CloudFront adds it, the API's web ACL requires it"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

# Generated once; rotate by tainting this resource and applying (CloudFront and WAF follow together).
data "aws_secretsmanager_random_password" "origin_verify" {
  password_length     = 48
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret_version" "origin_verify" {
  secret_id     = aws_secretsmanager_secret.origin_verify.id
  secret_string = data.aws_secretsmanager_random_password.origin_verify.random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}

resource "aws_wafv2_web_acl" "api" {
  name        = "${var.name_prefix}-api-origin-verify"
  description = "The API answers CloudFront only: requests without ${var.origin_verify_header} are blocked"
  scope       = "REGIONAL"

  default_action {
    block {}
  }

  rule {
    name     = "from-cloudfront"
    priority = 0

    action {
      allow {}
    }

    statement {
      byte_match_statement {
        search_string         = aws_secretsmanager_secret_version.origin_verify.secret_string
        positional_constraint = "EXACTLY"

        field_to_match {
          single_header {
            name = lower(var.origin_verify_header)
          }
        }

        text_transformation {
          priority = 0
          type     = "NONE"
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name_prefix}-from-cloudfront"
      sampled_requests_enabled   = false
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = "${var.name_prefix}-api-origin-verify"
    sampled_requests_enabled   = false
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  resource_arn = aws_api_gateway_stage.api.arn
  web_acl_arn  = aws_wafv2_web_acl.api.arn
}

# The blocked requests only (someone calling the API around CloudFront): the allowed ones are in
# the stage's access log already. WAF requires the log group name to start with aws-waf-logs-.
# https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html
resource "aws_cloudwatch_log_group" "api_waf" {
  name              = "aws-waf-logs-${local.api_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_wafv2_web_acl_logging_configuration" "api" {
  resource_arn            = aws_wafv2_web_acl.api.arn
  log_destination_configs = [aws_cloudwatch_log_group.api_waf.arn]

  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }
    }
  }
}

# The methods were single resources (proxy) and alert-only maps before one map served them all:
# an applied stack keeps every method, integration and setting (no replacement).
# https://developer.hashicorp.com/terraform/language/modules/develop/refactoring
moved {
  from = aws_api_gateway_method.proxy_any
  to   = aws_api_gateway_method.route["proxy/ANY"]
}

moved {
  from = aws_api_gateway_integration.proxy_any
  to   = aws_api_gateway_integration.route["proxy/ANY"]
}

moved {
  from = aws_api_gateway_method.alerts["alerts/ANY"]
  to   = aws_api_gateway_method.route["alerts/ANY"]
}

moved {
  from = aws_api_gateway_integration.alerts["alerts/ANY"]
  to   = aws_api_gateway_integration.route["alerts/ANY"]
}

moved {
  from = aws_api_gateway_method.alerts["alerts/POST"]
  to   = aws_api_gateway_method.route["alerts/POST"]
}

moved {
  from = aws_api_gateway_integration.alerts["alerts/POST"]
  to   = aws_api_gateway_integration.route["alerts/POST"]
}

moved {
  from = aws_api_gateway_method.alerts["alert/ANY"]
  to   = aws_api_gateway_method.route["alert/ANY"]
}

moved {
  from = aws_api_gateway_integration.alerts["alert/ANY"]
  to   = aws_api_gateway_integration.route["alert/ANY"]
}

moved {
  from = aws_api_gateway_method.alerts["alert/DELETE"]
  to   = aws_api_gateway_method.route["alert/DELETE"]
}

moved {
  from = aws_api_gateway_integration.alerts["alert/DELETE"]
  to   = aws_api_gateway_integration.route["alert/DELETE"]
}

moved {
  from = aws_api_gateway_method.proxy_options
  to   = aws_api_gateway_method.preflight["proxy"]
}

moved {
  from = aws_api_gateway_method.alerts_options["alerts"]
  to   = aws_api_gateway_method.preflight["alerts"]
}

moved {
  from = aws_api_gateway_method.alerts_options["alert"]
  to   = aws_api_gateway_method.preflight["alert"]
}

moved {
  from = aws_api_gateway_integration.proxy_options
  to   = aws_api_gateway_integration.preflight["proxy"]
}

moved {
  from = aws_api_gateway_integration.alerts_options["alerts"]
  to   = aws_api_gateway_integration.preflight["alerts"]
}

moved {
  from = aws_api_gateway_integration.alerts_options["alert"]
  to   = aws_api_gateway_integration.preflight["alert"]
}

moved {
  from = aws_api_gateway_method_response.proxy_options
  to   = aws_api_gateway_method_response.preflight["proxy"]
}

moved {
  from = aws_api_gateway_method_response.alerts_options["alerts"]
  to   = aws_api_gateway_method_response.preflight["alerts"]
}

moved {
  from = aws_api_gateway_method_response.alerts_options["alert"]
  to   = aws_api_gateway_method_response.preflight["alert"]
}

moved {
  from = aws_api_gateway_integration_response.proxy_options
  to   = aws_api_gateway_integration_response.preflight["proxy"]
}

moved {
  from = aws_api_gateway_integration_response.alerts_options["alerts"]
  to   = aws_api_gateway_integration_response.preflight["alerts"]
}

moved {
  from = aws_api_gateway_integration_response.alerts_options["alert"]
  to   = aws_api_gateway_integration_response.preflight["alert"]
}

moved {
  from = aws_api_gateway_method_settings.all
  to   = aws_api_gateway_method_settings.this["all"]
}

moved {
  from = aws_api_gateway_method_settings.writes["create"]
  to   = aws_api_gateway_method_settings.this["create"]
}

moved {
  from = aws_api_gateway_method_settings.writes["delete"]
  to   = aws_api_gateway_method_settings.this["delete"]
}
