# The SSE origin: a RESPONSE_STREAM Function URL on the function's alias, reachable only through
# CloudFront. AWS_IAM auth and CloudFront's origin access control for Lambda: CloudFront signs every
# request (SigV4), and only this distribution may invoke the URL, so a direct call to the URL is
# refused (403) before the function runs and records nothing.
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-lambda.html
#
# The signature takes the request's Authorization header: the per-alert stream's token travels in
# X-Auth-Token instead (src/lambdas/sse_streaming/request.py).
resource "aws_lambda_function_url" "sse" {
  function_name      = var.sse_function_name
  qualifier          = var.function_alias
  authorization_type = "AWS_IAM"
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

resource "aws_cloudfront_origin_access_control" "sse" {
  name                              = "${var.name_prefix}-sse"
  description                       = "CloudFront signs its requests to the SSE Function URL"
  origin_access_control_origin_type = "lambda"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# Only this distribution may invoke the URL: lambda:InvokeFunctionUrl for the URL, and (required for
# Function URLs since October 2025) lambda:InvokeFunction, both for the CloudFront service principal
# with the distribution as the source. No public statement remains.
# https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html ("Starting in October 2025 ... both")
resource "aws_lambda_permission" "sse_cloudfront" {
  for_each = toset(["lambda:InvokeFunctionUrl", "lambda:InvokeFunction"])

  statement_id  = "AllowCloudFront${replace(each.key, "lambda:", "")}"
  action        = each.key
  function_name = var.sse_function_name
  qualifier     = var.function_alias
  principal     = "cloudfront.amazonaws.com"
  source_arn    = aws_cloudfront_distribution.edge.arn
}
