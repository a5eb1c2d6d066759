# The alert routes: explicit resources (more specific than /api/v2/{proxy+}, so API Gateway routes
# them here) whose methods need a Cognito ID token; reading sentiment stays on the public proxy.
# A method with a COGNITO_USER_POOLS authorizer passes the token's claims to the proxy integration
# as requestContext.authorizer.claims; a missing or invalid token gets the UNAUTHORIZED gateway
# response (401) without invoking the function (DEFAULT_4XX adds CORS to it).
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-enable-cognito-user-pool.html
locals {
  # resource key => (parent key or "v2", path part)
  alert_resources = {
    alerts = "alerts"
    alert  = "{alert_id}"
  }
  # Methods per resource: ANY keeps the function's own 405 for other methods (behind the authorizer
  # too); the write methods are explicit so the stage can throttle them on their own.
  alert_methods = {
    "alerts/ANY"   = { resource = "alerts", method = "ANY" }
    "alerts/POST"  = { resource = "alerts", method = "POST" }
    "alert/ANY"    = { resource = "alert", method = "ANY" }
    "alert/DELETE" = { resource = "alert", method = "DELETE" }
  }
  # Stage method paths (`<resource path without leading slash>/<METHOD>`) of the writes.
  write_method_paths = {
    create = "api/v2/alerts/POST"
    delete = "api/v2/alerts/{alert_id}/DELETE"
  }
}

resource "aws_api_gateway_resource" "alerts" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_resource.v2.id
  path_part   = local.alert_resources.alerts
}

resource "aws_api_gateway_resource" "alert" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_resource.alerts.id
  path_part   = local.alert_resources.alert
}

resource "aws_api_gateway_authorizer" "cognito" {
  name            = "${var.name_prefix}-cognito"
  rest_api_id     = aws_api_gateway_rest_api.api.id
  type            = "COGNITO_USER_POOLS"
  provider_arns   = [var.user_pool_arn]
  identity_source = "method.request.header.Authorization"
}

locals {
  alert_resource_ids = {
    alerts = aws_api_gateway_resource.alerts.id
    alert  = aws_api_gateway_resource.alert.id
  }
}

resource "aws_api_gateway_method" "alerts" {
  for_each = local.alert_methods

  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = local.alert_resource_ids[each.value.resource]
  http_method   = each.value.method
  authorization = "COGNITO_USER_POOLS"
  authorizer_id = aws_api_gateway_authorizer.cognito.id
}

resource "aws_api_gateway_integration" "alerts" {
  for_each = local.alert_methods

  rest_api_id             = aws_api_gateway_rest_api.api.id
  resource_id             = local.alert_resource_ids[each.value.resource]
  http_method             = aws_api_gateway_method.alerts[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = var.dashboard_invoke_arn
}

# The CORS preflight carries no token: answered by API Gateway itself, as on the proxy.
resource "aws_api_gateway_method" "alerts_options" {
  for_each = local.alert_resource_ids

  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = each.value
  http_method   = "OPTIONS"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "alerts_options" {
  for_each = local.alert_resource_ids

  rest_api_id       = aws_api_gateway_rest_api.api.id
  resource_id       = each.value
  http_method       = aws_api_gateway_method.alerts_options[each.key].http_method
  type              = "MOCK"
  request_templates = { "application/json" = "{\"statusCode\": 200}" }
}

resource "aws_api_gateway_method_response" "alerts_options" {
  for_each = local.alert_resource_ids

  rest_api_id         = aws_api_gateway_rest_api.api.id
  resource_id         = each.value
  http_method         = aws_api_gateway_method.alerts_options[each.key].http_method
  status_code         = "200"
  response_parameters = { for name, value in local.cors_api_headers : "method.response.header.${name}" => true }
}

resource "aws_api_gateway_integration_response" "alerts_options" {
  for_each = local.alert_resource_ids

  rest_api_id         = aws_api_gateway_rest_api.api.id
  resource_id         = each.value
  http_method         = aws_api_gateway_method.alerts_options[each.key].http_method
  status_code         = aws_api_gateway_method_response.alerts_options[each.key].status_code
  response_parameters = { for name, value in local.cors_api_headers : "method.response.header.${name}" => value }

  depends_on = [aws_api_gateway_integration.alerts_options]
}

# Writes get their own, lower stage throttle (the stage-wide one stays on everything else). Usage
# plans throttle per API key, which a browser cannot keep secret, so the stage's method settings are
# the mechanism here; per-user bounds are the function's (rule cap) and the notifier's (email caps).
# https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html
resource "aws_api_gateway_method_settings" "writes" {
  for_each = local.write_method_paths

  rest_api_id = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  method_path = each.value

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    caching_enabled        = false
    cache_data_encrypted   = true
    throttling_rate_limit  = var.write_throttling_rate_limit
    throttling_burst_limit = var.write_throttling_burst_limit
  }

  depends_on = [aws_api_gateway_method.alerts]
}
