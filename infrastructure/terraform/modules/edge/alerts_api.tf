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
  # Writes get their own, lower stage throttle (the stage-wide one stays on everything else). Usage
  # plans throttle per API key, which a browser cannot keep secret, so the stage's method settings are
  # the mechanism here; per-user bounds are the function's (rule cap) and the notifier's (email caps).
  # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html
  # Stage method paths (`<resource path without leading slash>/<METHOD>`) and their throttles
  # (aws_api_gateway_method_settings.this): everything ("*/*") and, lower, each write.
  method_throttles = {
    all    = { method_path = "*/*", rate_limit = var.api_throttling_rate_limit, burst_limit = var.api_throttling_burst_limit }
    create = { method_path = "api/v2/alerts/POST", rate_limit = var.write_throttling_rate_limit, burst_limit = var.write_throttling_burst_limit }
    delete = { method_path = "api/v2/alerts/{alert_id}/DELETE", rate_limit = var.write_throttling_rate_limit, burst_limit = var.write_throttling_burst_limit }
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
