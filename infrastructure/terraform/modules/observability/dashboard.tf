locals {
  # FR-044 / SC-022: the alarm widget is built from the alarm resources themselves.
  alarm_arns = concat(
    [for a in aws_cloudwatch_metric_alarm.this : a.arn],
    [for a in aws_cloudwatch_metric_alarm.global : a.arn],
    [for a in aws_cloudwatch_metric_alarm.billing : a.arn],
  )

  # One graph per `widget` of the alarm maps (alarms.tf): every alarmed metric is drawn, with the
  # alarm's own statistic, on the graph its map names; nothing is listed twice by hand.
  graphed_alarms = merge(
    { for key, a in local.alarms : key => merge(a, { region = data.aws_region.current.name }) },
    { for key, a in local.global_alarms : key => merge(a, { region = "us-east-1" }) },
  )
  graph_titles = sort(distinct([for a in values(local.graphed_alarms) : a.widget]))

  alarm_metric_widgets = [
    for i, title in local.graph_titles : {
      type   = "metric"
      x      = (i % 2) * 12
      y      = 8 + floor(i / 2) * 6
      width  = 12
      height = 6
      properties = {
        title  = title
        region = data.aws_region.current.name
        period = var.alarm_period_s
        metrics = [
          for key in sort(keys(local.graphed_alarms)) : concat(
            [local.graphed_alarms[key].namespace, local.graphed_alarms[key].metric],
            flatten([for name in sort(keys(local.graphed_alarms[key].dimensions)) : [name, local.graphed_alarms[key].dimensions[name]]]),
            [{ stat = local.graphed_alarms[key].statistic, label = key, region = local.graphed_alarms[key].region }],
          ) if local.graphed_alarms[key].widget == title
        ]
      }
    }
  ]

  function_metric_widgets = [
    for i, key in sort(keys(var.functions)) : {
      type   = "metric"
      x      = (i % 3) * 8
      y      = 8 + ceil(length(local.graph_titles) / 2) * 6 + floor(i / 3) * 6
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
          ["AWS/Lambda", "Throttles", "FunctionName", var.function_names[key]],
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
      local.alarm_metric_widgets,
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
