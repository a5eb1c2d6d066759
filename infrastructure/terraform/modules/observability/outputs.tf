output "alarm_names" {
  description = "Every alarm name (regional and billing)."
  value = concat(
    [for a in aws_cloudwatch_metric_alarm.this : a.alarm_name],
    [for a in aws_cloudwatch_metric_alarm.global : a.alarm_name],
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

output "alarms" {
  description = "Every regional alarm by name: what it watches and how it decides."
  value = {
    for a in aws_cloudwatch_metric_alarm.this : a.alarm_name => {
      namespace          = a.namespace
      metric_name        = a.metric_name
      dimensions         = a.dimensions
      statistic          = coalesce(a.statistic, a.extended_statistic)
      comparison         = a.comparison_operator
      threshold          = a.threshold
      evaluation_periods = a.evaluation_periods
      datapoints         = a.datapoints_to_alarm
      treat_missing_data = a.treat_missing_data
      alarm_actions      = a.alarm_actions
    }
  }
}

output "sampling_rules" {
  description = "X-Ray sampling rules by name: rate, reservoir and what they match."
  value = {
    for r in aws_xray_sampling_rule.this : r.rule_name => {
      fixed_rate     = r.fixed_rate
      reservoir_size = r.reservoir_size
      service_name   = r.service_name
      service_type   = r.service_type
    }
  }
}

output "xray_group_filters" {
  description = "X-Ray group filter expression by group name (each limited to this environment's services)."
  value       = { for g in aws_xray_group.this : g.group_name => g.filter_expression }
}

output "global_alarms" {
  description = "The us-east-1 alarms (CloudFront) by name."
  value = {
    for a in aws_cloudwatch_metric_alarm.global : a.alarm_name => {
      namespace          = a.namespace
      metric_name        = a.metric_name
      treat_missing_data = a.treat_missing_data
      alarm_actions      = a.alarm_actions
    }
  }
}

output "dashboard_graphs" {
  description = "Titles of the dashboard's alarm-metric graphs (one per widget key of the alarm maps)."
  value       = local.graph_titles
}

output "log_metric_filters" {
  description = "Every log metric filter by key: the log group it reads, its pattern and the metric it writes."
  value = {
    for key, f in aws_cloudwatch_log_metric_filter.this : key => {
      log_group_name = f.log_group_name
      pattern        = f.pattern
      metric         = one(f.metric_transformation).name
      namespace      = one(f.metric_transformation).namespace
    }
  }
}
