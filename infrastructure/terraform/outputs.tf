output "function_names" {
  description = "Physical Lambda names by stack key."
  value       = module.lambda_functions.function_names
}

output "table_names" {
  description = "Physical DynamoDB table names by stack key."
  value       = module.data.table_names
}

output "topic_arns" {
  description = "SNS topic ARNs by stack key."
  value       = module.data.topic_arns
}

output "sse_ecr_repository_url" {
  description = "Where `make deploy-sse` pushes the SSE image (then pass its digest as sse_image_digest)."
  value       = module.lambda_functions.sse_ecr_repository_url
}

output "api_invoke_url" {
  description = "API Gateway stage URL (the dashboard API lives under /api/v2/)."
  value       = module.edge.api_invoke_url
}

output "sse_function_url" {
  description = "SSE Function URL (RESPONSE_STREAM, AWS_IAM: a direct call is refused; only CloudFront, signing through origin access control, may call it)."
  value       = module.edge.sse_function_url
}

output "cloudfront_domain_name" {
  description = "The public entry point: frontend, /api/v2/* and the SSE paths."
  value       = module.edge.cloudfront_domain_name
}

output "frontend_bucket" {
  description = "S3 bucket to upload frontend/dist to."
  value       = module.edge.frontend_bucket
}

output "alarm_names" {
  description = "Every CloudWatch alarm of the stack (the dashboard's alarm widget lists the same set)."
  value       = module.observability.alarm_names
}

output "dashboard_name" {
  description = "CloudWatch dashboard name."
  value       = module.observability.dashboard_name
}

output "origin_verify_header" {
  description = "Header CloudFront adds to API requests and the API's web ACL requires (stack.json edge.origin_verify_header); its value is in the origin_verify_secret_arn secret."
  value       = module.edge.origin_verify_header
}

output "origin_verify_secret_arn" {
  description = "Secrets Manager secret holding the origin-verify header's value."
  value       = module.edge.origin_verify_secret_arn
}

output "xray_sns_topic_arns" {
  description = "Topics whose SNS segments X-Ray accepts (the resource policy's aws:SourceArn: the map's Active topics)."
  value       = module.data.xray_sns_topic_arns
}

output "function_alias_arns" {
  description = "The alias every trigger invokes, by stack key."
  value       = module.lambda_functions.alias_arns
}

output "cognito_user_pool_id" {
  description = "The dashboard's Cognito user pool (alert rules belong to its users)."
  value       = module.auth.user_pool_id
}

output "cognito_web_client_id" {
  description = "App client the dashboard page signs in with (put it in the page's config.json)."
  value       = module.auth.web_client_id
}
