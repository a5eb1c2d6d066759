output "api_id" {
  description = "REST API id."
  value       = aws_api_gateway_rest_api.api.id
}

output "api_name" {
  description = "REST API name (with the stage: the X-Ray sampling service name <api>/<stage>)."
  value       = aws_api_gateway_rest_api.api.name
}

output "api_stage_name" {
  description = "REST API stage name."
  value       = aws_api_gateway_stage.api.stage_name
}

output "api_invoke_url" {
  description = "Stage invoke URL."
  value       = aws_api_gateway_stage.api.invoke_url
}

output "sse_function_url" {
  description = "The SSE Function URL (AWS_IAM: only the distribution, signing through origin access control, may call it)."
  value       = aws_lambda_function_url.sse.function_url
}

output "cloudfront_domain_name" {
  description = "Distribution domain name."
  value       = aws_cloudfront_distribution.edge.domain_name
}

output "cloudfront_distribution_id" {
  description = "Distribution id (cache invalidations after a frontend upload)."
  value       = aws_cloudfront_distribution.edge.id
}

output "frontend_bucket" {
  description = "Frontend bucket name."
  value       = aws_s3_bucket.frontend.bucket
}

output "cors_allow_headers" {
  description = "Request headers CORS allows (API Gateway and Function URL)."
  value       = local.cors_allow_headers
}

output "cors_expose_headers" {
  description = "Response headers CORS exposes (API Gateway and Function URL)."
  value       = local.cors_expose_headers
}

output "origin_verify_header" {
  description = "The header the API's web ACL requires and CloudFront adds (the devstack's gateway adds it too)."
  value       = var.origin_verify_header
}

output "origin_verify_secret_arn" {
  description = "Secrets Manager secret holding the header's value."
  value       = aws_secretsmanager_secret.origin_verify.arn
}

output "api_web_acl_arn" {
  description = "The regional web ACL on the API stage (blocks requests that did not come through CloudFront)."
  value       = aws_wafv2_web_acl.api.arn
}

output "sse_function_url_auth_type" {
  description = "Authorization type of the SSE Function URL (AWS_IAM behind origin access control)."
  value       = aws_lambda_function_url.sse.authorization_type
}
