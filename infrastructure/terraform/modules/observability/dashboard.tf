locals {
  # FR-044 / SC-022: the alarm widget is built from the alarm resources themselves.
  alarm_arns = concat(
    [for a in aws_cloudwatch_metric_alarm.this : a.arn],
    [for a in aws_cloudwatch_metric_alarm.billing : a.arn],
  )

  function_metric_widgets = [
    for i, key in sort(keys(var.functions)) : {
      type   = "metric"
      x      = (i % 3) * 8
      y      = 8 + floor(i / 3) * 6
      width  = 8
      height = 6
      properties = {
        title  = var.function_names[key]
        region = data.aws_region.current.name
        stat   = "Sum"
        period = var.alarm_period_s
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.function_names[key]],
          ["AWS/Lambda", "Errors", "FunctionName", var.function_names[key]],
          ["AWS/Lambda", "Duration", "FunctionName", var.function_names[key], { stat = "p95", yAxis = "right" }],
        ]
      }
    }
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({
    widgets = concat(
      [{
        type   = "alarm"
        x      = 0
        y      = 0
        width  = 24
        height = 8
        properties = {
          title  = "Every alarm of ${var.name_prefix} (${length(local.alarm_arns)})"
          alarms = local.alarm_arns
          sortBy = "stateUpdatedTimestamp"
        }
      }],
      local.function_metric_widgets,
    )
  })

  lifecycle {
    precondition {
      condition     = length(local.alarm_arns) <= 100
      error_message = "An alarm status widget shows at most 100 alarms: split the widget."
    }
  }
}
