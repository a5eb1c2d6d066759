output "kms_key_arn" {
  description = "The stack's customer managed key."
  value       = aws_kms_key.this["stack"].arn
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

output "alerts_kms_key_arn" {
  description = "The alerting topics' own key."
  value       = aws_kms_key.this["alerts"].arn
}

output "alerting_topics" {
  description = "Keys of the topics on the alerts key."
  value       = [for key, topic in var.topics : key if topic.alerting]
}

output "xray_sns_topic_arns" {
  description = "Topics the X-Ray resource policy lets SNS write segments for (the map's Active ones)."
  value       = [for key in keys(local.traced_topics) : aws_sns_topic.this[key].arn]
}

output "xray_resource_policy_name" {
  description = "Name of the X-Ray resource policy for SNS (null when no topic traces actively)."
  value       = one(aws_xray_resource_policy.sns[*].policy_name)
}
