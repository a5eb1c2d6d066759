data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  api_name   = "${var.name_prefix}-api"

  # FR-015 / FR-082: the browser sends the trace header and the SSE resume/linkage headers; it reads
  # x-amzn-trace-id (previous_trace_id on reconnect), Retry-After (503) and X-SSE-Resume-Supported.
  cors_allow_headers  = ["X-Amzn-Trace-Id", "Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id", "X-SSE-Connection-Sequence", "Authorization", "Content-Type"]
  cors_expose_headers = ["x-amzn-trace-id", "retry-after", "x-sse-resume-supported"]
  cors_api_methods    = ["GET", "POST", "DELETE", "OPTIONS"]
  cors_sse_methods    = ["GET"]
  cors_max_age_s      = 600

  # API Gateway header mapping values are quoted literals.
  cors_api_headers = {
    "Access-Control-Allow-Origin"   = "'${var.cors_allow_origin}'"
    "Access-Control-Allow-Headers"  = "'${join(",", local.cors_allow_headers)}'"
    "Access-Control-Allow-Methods"  = "'${join(",", local.cors_api_methods)}'"
    "Access-Control-Expose-Headers" = "'${join(",", local.cors_expose_headers)}'"
    "Access-Control-Max-Age"        = "'${local.cors_max_age_s}'"
  }
}

# ---------------------------------------------------------------- API Gateway (REST) -> dashboard
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

# The dashboard validates its own input (pydantic) and answers 400/404/405/413 itself.
resource "aws_api_gateway_method" "proxy_any" {
  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = aws_api_gateway_resource.proxy.id
  http_method   = "ANY"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "proxy_any" {
  rest_api_id             = aws_api_gateway_rest_api.api.id
  resource_id             = aws_api_gateway_resource.proxy.id
  http_method             = aws_api_gateway_method.proxy_any.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = var.dashboard_invoke_arn
}

# Preflight answered by API Gateway itself, with the same CORS as the dashboard's resolver.
resource "aws_api_gateway_method" "proxy_options" {
  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = aws_api_gateway_resource.proxy.id
  http_method   = "OPTIONS"
  authorization = "NONE"
}

resource "aws_api_gateway_integration" "proxy_options" {
  rest_api_id       = aws_api_gateway_rest_api.api.id
  resource_id       = aws_api_gateway_resource.proxy.id
  http_method       = aws_api_gateway_method.proxy_options.http_method
  type              = "MOCK"
  request_templates = { "application/json" = "{\"statusCode\": 200}" }
}

resource "aws_api_gateway_method_response" "proxy_options" {
  rest_api_id         = aws_api_gateway_rest_api.api.id
  resource_id         = aws_api_gateway_resource.proxy.id
  http_method         = aws_api_gateway_method.proxy_options.http_method
  status_code         = "200"
  response_parameters = { for name, value in local.cors_api_headers : "method.response.header.${name}" => true }
}

resource "aws_api_gateway_integration_response" "proxy_options" {
  rest_api_id         = aws_api_gateway_rest_api.api.id
  resource_id         = aws_api_gateway_resource.proxy.id
  http_method         = aws_api_gateway_method.proxy_options.http_method
  status_code         = aws_api_gateway_method_response.proxy_options.status_code
  response_parameters = { for name, value in local.cors_api_headers : "method.response.header.${name}" => value }

  depends_on = [aws_api_gateway_integration.proxy_options]
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
      aws_api_gateway_resource.proxy.id,
      aws_api_gateway_method.proxy_any.id,
      aws_api_gateway_integration.proxy_any.id,
      aws_api_gateway_method.proxy_options.id,
      aws_api_gateway_integration.proxy_options.id,
      aws_api_gateway_integration_response.proxy_options.id,
      local.cors_api_headers,
      [for r in aws_api_gateway_gateway_response.cors : r.response_parameters],
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

resource "aws_api_gateway_method_settings" "all" {
  rest_api_id = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    caching_enabled        = false
    cache_data_encrypted   = true
    throttling_rate_limit  = var.api_throttling_rate_limit
    throttling_burst_limit = var.api_throttling_burst_limit
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayV2Routes"
  action        = "lambda:InvokeFunction"
  function_name = var.dashboard_function_name
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
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_logs[0].arn
}

# ---------------------------------------------------------------- SSE Function URL
# Authorization NONE: the per-alert stream authenticates `Authorization: Bearer <token>` itself, and
# CloudFront's origin access control for Lambda would replace that header with its own signature.
resource "aws_lambda_function_url" "sse" {
  function_name      = var.sse_function_name
  authorization_type = "NONE"
  invoke_mode        = "RESPONSE_STREAM"

  cors {
    allow_origins     = [var.cors_allow_origin]
    allow_methods     = local.cors_sse_methods
    allow_headers     = local.cors_allow_headers
    expose_headers    = local.cors_expose_headers
    allow_credentials = false
    max_age           = local.cors_max_age_s
  }
}

# Since October 2025 a Function URL needs two statements: lambda:InvokeFunctionUrl (auth type NONE)
# and lambda:InvokeFunction limited to invocations through the URL (lambda:InvokedViaFunctionUrl).
resource "aws_lambda_permission" "sse_url" {
  statement_id           = "FunctionURLAllowPublicAccess"
  action                 = "lambda:InvokeFunctionUrl"
  function_name          = var.sse_function_name
  principal              = "*"
  function_url_auth_type = "NONE"
}

# aws_lambda_permission gained invoked_via_function_url only in provider 6.29; on 5.x the statement
# goes through Cloud Control (AWS::Lambda::Permission, InvokedViaFunctionUrl). Never a bare public
# lambda:InvokeFunction: that would let any AWS principal invoke the function directly.
resource "aws_cloudcontrolapi_resource" "sse_url_invoke" {
  type_name = "AWS::Lambda::Permission"
  desired_state = jsonencode({
    FunctionName          = var.sse_function_name
    Action                = "lambda:InvokeFunction"
    Principal             = "*"
    InvokedViaFunctionUrl = true
  })
}

# ---------------------------------------------------------------- frontend bucket
resource "aws_s3_bucket" "frontend" {
  bucket = "${var.name_prefix}-frontend-${local.account_id}"
}

resource "aws_s3_bucket_public_access_block" "frontend" {
  bucket                  = aws_s3_bucket.frontend.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "frontend" {
  bucket = aws_s3_bucket.frontend.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "frontend" {
  bucket = aws_s3_bucket.frontend.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "frontend" {
  bucket = aws_s3_bucket.frontend.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "frontend" {
  bucket = aws_s3_bucket.frontend.id

  rule {
    id     = "expire-old-builds"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "frontend" {
  bucket = aws_s3_bucket.frontend.id
  policy = data.aws_iam_policy_document.frontend.json

  depends_on = [aws_s3_bucket_public_access_block.frontend]
}

# The page's config.json (frontend/src/trace-links.ts): trace ids link to the CloudWatch console's X-Ray
# traces of this region. `aws s3 sync frontend/dist` leaves it alone: dist/ holds no config.json.
resource "aws_s3_object" "frontend_config" {
  bucket        = aws_s3_bucket.frontend.id
  key           = "config.json"
  content       = jsonencode({ traceLinks = { kind = "cloudwatch", region = local.region } })
  content_type  = "application/json"
  cache_control = "max-age=300"
}

data "aws_iam_policy_document" "frontend" {
  statement {
    sid       = "CloudFrontReadsThroughOriginAccessControl"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.frontend.arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["cloudfront.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "AWS:SourceArn"
      values   = [aws_cloudfront_distribution.edge.arn]
    }
  }

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.frontend.arn, "${aws_s3_bucket.frontend.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# ---------------------------------------------------------------- CloudFront
# FR-035: the client cannot force sampling; the edge drops `Sampled=` and keeps Root/Parent.
resource "aws_cloudfront_function" "strip_sampling" {
  name    = "${var.name_prefix}-strip-sampling"
  runtime = "cloudfront-js-2.0"
  comment = "Removes the Sampled field of X-Amzn-Trace-Id (keeps Root/Parent)"
  publish = true
  code    = file("${path.module}/functions/strip_sampling.js")
}

resource "aws_cloudfront_origin_access_control" "frontend" {
  name                              = "${var.name_prefix}-frontend"
  description                       = "CloudFront reads the frontend bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

data "aws_cloudfront_cache_policy" "disabled" {
  name = "Managed-CachingDisabled"
}

data "aws_cloudfront_cache_policy" "optimized" {
  name = "Managed-CachingOptimized"
}

data "aws_cloudfront_origin_request_policy" "all_viewer_except_host" {
  name = "Managed-AllViewerExceptHostHeader"
}

resource "aws_cloudfront_response_headers_policy" "security" {
  name = "${var.name_prefix}-security-headers"

  security_headers_config {
    strict_transport_security {
      access_control_max_age_sec = 31536000
      include_subdomains         = true
      preload                    = true
      override                   = true
    }
    content_type_options {
      override = true
    }
    frame_options {
      frame_option = "DENY"
      override     = true
    }
    referrer_policy {
      referrer_policy = "strict-origin-when-cross-origin"
      override        = true
    }
  }
}

locals {
  api_origin_id      = "api-gateway"
  sse_origin_id      = "sse-function-url"
  frontend_origin_id = "frontend-bucket"
  # Ordered: the SSE paths first, then the rest of the API.
  dynamic_behaviors = [
    { path = "/api/v2/stream*", origin = local.sse_origin_id, methods = ["GET", "HEAD", "OPTIONS"] },
    { path = "/api/v2/configurations/*/stream", origin = local.sse_origin_id, methods = ["GET", "HEAD", "OPTIONS"] },
    { path = "/api/v2/*", origin = local.api_origin_id, methods = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"] },
  ]
}

resource "aws_cloudfront_distribution" "edge" {
  enabled             = true
  comment             = "${var.name_prefix}: frontend, API and SSE"
  default_root_object = "index.html"
  price_class         = var.price_class
  aliases             = var.domain_aliases
  http_version        = "http2and3"

  origin {
    origin_id                = local.frontend_origin_id
    domain_name              = aws_s3_bucket.frontend.bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.frontend.id
  }

  origin {
    origin_id   = local.api_origin_id
    domain_name = "${aws_api_gateway_rest_api.api.id}.execute-api.${local.region}.amazonaws.com"
    origin_path = "/${aws_api_gateway_stage.api.stage_name}"

    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
    }
  }

  origin {
    origin_id   = local.sse_origin_id
    domain_name = split("/", aws_lambda_function_url.sse.function_url)[2]

    custom_origin_config {
      http_port                = 80
      https_port               = 443
      origin_protocol_policy   = "https-only"
      origin_ssl_protocols     = ["TLSv1.2"]
      origin_read_timeout      = var.sse_origin_read_timeout
      origin_keepalive_timeout = 60
    }
  }

  default_cache_behavior {
    target_origin_id           = local.frontend_origin_id
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD", "OPTIONS"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = data.aws_cloudfront_cache_policy.optimized.id
    response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id
  }

  dynamic "ordered_cache_behavior" {
    for_each = local.dynamic_behaviors
    content {
      path_pattern               = ordered_cache_behavior.value.path
      target_origin_id           = ordered_cache_behavior.value.origin
      viewer_protocol_policy     = "https-only"
      allowed_methods            = ordered_cache_behavior.value.methods
      cached_methods             = ["GET", "HEAD"]
      compress                   = false # SSE frames must not wait for a compression buffer
      cache_policy_id            = data.aws_cloudfront_cache_policy.disabled.id
      origin_request_policy_id   = data.aws_cloudfront_origin_request_policy.all_viewer_except_host.id
      response_headers_policy_id = aws_cloudfront_response_headers_policy.security.id

      function_association {
        event_type   = "viewer-request"
        function_arn = aws_cloudfront_function.strip_sampling.arn
      }
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    cloudfront_default_certificate = var.acm_certificate_arn == null
    acm_certificate_arn            = var.acm_certificate_arn
    ssl_support_method             = var.acm_certificate_arn == null ? null : "sni-only"
    minimum_protocol_version       = var.acm_certificate_arn == null ? "TLSv1" : "TLSv1.2_2021"
  }
}
