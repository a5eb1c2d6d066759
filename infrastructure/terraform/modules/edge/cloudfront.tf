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

    # What the API's web ACL requires (api_gateway.tf): the API answers CloudFront only.
    custom_header {
      name  = var.origin_verify_header
      value = aws_secretsmanager_secret_version.origin_verify.secret_string
    }

    custom_origin_config {
      http_port              = 80
      https_port             = 443
      origin_protocol_policy = "https-only"
      origin_ssl_protocols   = ["TLSv1.2"]
    }
  }

  origin {
    origin_id                = local.sse_origin_id
    domain_name              = split("/", aws_lambda_function_url.sse.function_url)[2]
    origin_access_control_id = aws_cloudfront_origin_access_control.sse.id

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
