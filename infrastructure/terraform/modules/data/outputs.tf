output "kms_key_arn" {
  description = "The stack's customer managed key."
  value       = aws_kms_key.stack.arn
}

output "table_names" {
  description = "Table name by stack key."
  value       = { for k, t in aws_dynamodb_table.this : k => t.name }
}

output "table_arns" {
  description = "Table ARN by stack key."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "topic_arns" {
  description = "SNS topic ARN by stack key."
  value       = { for k, t in aws_sns_topic.this : k => t.arn }
}

output "queue_names" {
  description = "SQS queue name by stack key."
  value       = { for k, q in aws_sqs_queue.this : k => q.name }
}

output "queue_urls" {
  description = "SQS queue URL by stack key (what `queue:<key>` env references resolve to)."
  value       = { for k, q in aws_sqs_queue.this : k => q.url }
}

output "queue_arns" {
  description = "SQS queue ARN by stack key."
  value       = { for k, q in aws_sqs_queue.this : k => q.arn }
}

output "secret_names" {
  description = "Secret name by stack key (what `secret:<key>` env references resolve to)."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.name }
}

output "secret_arns" {
  description = "Secret ARN by stack key."
  value       = { for k, s in aws_secretsmanager_secret.this : k => s.arn }
}
