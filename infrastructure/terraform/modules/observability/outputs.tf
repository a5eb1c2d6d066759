output "alarm_names" {
  description = "Every alarm name (regional and billing)."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.this : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.billing : a.alarm_name],
  )
}

output "alarm_arns" {
  description = "Every alarm ARN: the set the dashboard's alarm widget lists."
  value       = local.alarm_arns
}

output "dashboard_name" {
  description = "CloudWatch dashboard name."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "xray_group_arns" {
  description = "X-Ray group ARN by key (faults, sse-reconnects, canary)."
  value       = { for k, g in aws_xray_group.this : k => g.arn }
}

output "sampling_rule_names" {
  description = "X-Ray sampling rule name by key."
  value       = { for k, r in aws_xray_sampling_rule.this : k => r.rule_name }
}
