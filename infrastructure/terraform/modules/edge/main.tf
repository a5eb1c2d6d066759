# The edge, split by concern: api_gateway.tf (REST API -> dashboard alias, stage, the web ACL that
# admits CloudFront only), sse_origin.tf (the SSE Function URL behind origin access control),
# frontend.tf (the private bucket), cloudfront.tf (the distribution in front of all three). Shared
# lookups and the CORS settings live here.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  api_name   = "${var.name_prefix}-api"

  # FR-015 / FR-082: the browser sends the trace header and the SSE resume/linkage headers; it reads
  # x-amzn-trace-id (previous_trace_id on reconnect), Retry-After (503) and X-SSE-Resume-Supported.
  cors_allow_headers  = ["X-Amzn-Trace-Id", "Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id", "X-SSE-Connection-Sequence", "Authorization", "Content-Type", "X-Auth-Token"]
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
