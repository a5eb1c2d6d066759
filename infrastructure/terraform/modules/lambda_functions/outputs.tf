output "function_names" {
  description = "Physical function name by stack key."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "function_arns" {
  description = "Function ARN by stack key."
  value       = { for k, f in aws_lambda_function.this : k => f.arn }
}

output "invoke_arns" {
  description = "Invoke ARN by stack key (API Gateway integrations)."
  value       = { for k, f in aws_lambda_function.this : k => f.invoke_arn }
}

output "role_arns" {
  description = "Execution role ARN by stack key (one per function)."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "service_names" {
  description = "Service name by stack key (POWERTOOLS_SERVICE_NAME; OTEL_SERVICE_NAME of the image function)."
  value       = local.service_names
}

output "sse_ecr_repository_url" {
  description = "Repository URL of the image function (null if the map has none)."
  value       = try(one([for r in aws_ecr_repository.image : r.repository_url]), null)
}

output "environments" {
  description = "Each function's environment as deployed (references resolved, service names added); no secret values."
  value       = { for k, f in aws_lambda_function.this : k => f.environment[0].variables }
}
