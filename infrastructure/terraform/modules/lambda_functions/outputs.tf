output "function_names" {
  description = "Physical function name by stack key."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "log_group_names" {
  description = "Each function's CloudWatch log group by stack key (the observability module's metric filters read them)."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
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

output "alias_arns" {
  description = "ARN of each function's alias (what EventBridge, SNS and the Function URL invoke) by stack key."
  value       = { for k, a in aws_lambda_alias.this : k => a.arn }
}

output "alias_invoke_arns" {
  description = "Invoke ARN of each function's alias by stack key (API Gateway integrations)."
  value       = { for k, a in aws_lambda_alias.this : k => a.invoke_arn }
}

output "alias_name" {
  description = "The alias name every function shares (Lambda permission and Function URL qualifier)."
  value       = var.alias_name
}

output "published_versions" {
  description = "The version each alias points at, by stack key."
  value       = { for k, a in aws_lambda_alias.this : k => a.function_version }
}
