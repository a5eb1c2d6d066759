# Every alarm of the stack comes from the maps below through one resource (for_each): the
# dashboard's alarm widget lists the same set (FR-044, SC-022). All notify the alarms topic.
locals {
  app_namespace    = var.metric_namespaces["app"]
  canary_namespace = var.metric_namespaces["canary"]

  # specs/contracts.md, "Metrics": one alarm per metric and emitting function, dimension exactly
  # FunctionName = the function's physical name. treat_missing_data per FR-045: breaching where
  # silence means failure (heartbeats, throughput, the canary), notBreaching for error counts.
  metric_alarms = {
    NewItemsIngested                 = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 1800, evaluation_periods = 1, comparison = "LessThanThreshold", threshold = 1, missing = "breaching", summary = "no new items ingested in 30 min (the ingestion heartbeat, 0 included, is missing or zero)" }
    HighLatencyAlert                 = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "an ingestion run took over 30 s" }
    AnalysisErrors                   = { namespace = "app", functions = ["analysis"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "sentiment analysis failed" }
    StuckItems                       = { namespace = "app", functions = ["metrics"], statistic = "Maximum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "breaching", summary = "items pending for over 5 min (missing: the monitor of monitors is silent)" }
    MetricsLambdaErrors              = { namespace = "app", functions = ["metrics"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "the metrics Lambda failed a check" }
    NotificationDeliveryFailures     = { namespace = "app", functions = ["notification"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "an alert e-mail was not delivered" }
    ConnectionAcquireFailures        = { namespace = "app", functions = ["sse_streaming"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "SSE connections refused (limit reached or acquire failed)" }
    EventLatencyMs                   = { namespace = "app", functions = ["sse_streaming"], statistic = "p95", period = 300, evaluation_periods = 1, comparison = "GreaterThanThreshold", threshold = 3000, missing = "notBreaching", summary = "p95 SSE event latency over 3 s" }
    PollDurationMs                   = { namespace = "app", functions = ["sse_streaming"], statistic = "p95", period = 300, evaluation_periods = 1, comparison = "GreaterThanThreshold", threshold = 1000, missing = "notBreaching", summary = "p95 SSE DynamoDB poll over 1 s" }
    CircuitBreakerPersistenceFailure = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent paths 1-2: circuit-breaker load/save failed" }
    AuditEventPersistenceFailure     = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 3: audit-trail write failed" }
    DownstreamNotificationFailure    = { namespace = "app", functions = ["ingestion", "analysis"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 4: downstream SNS publish failed" }
    TimeseriesFanoutPartialFailure   = { namespace = "app", functions = ["analysis"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 5: time-series fan-out write failed" }
    SelfHealingItemFetchFailure      = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 6: self-healing item fetch failed" }
    ParallelFetcherErrors            = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 7: a parallel news fetch failed" }
    # The canary (FR-020): pages after two failed runs in a row; silence is a failure.
    CanaryHealth    = { namespace = "canary", functions = ["canary"], statistic = "Minimum", period = 300, evaluation_periods = 2, comparison = "LessThanThreshold", threshold = 1, missing = "breaching", summary = "the canary found X-Ray or CloudWatch unhealthy (or did not report) in 2 consecutive periods" }
    trace_data_loss = { namespace = "canary", functions = ["canary"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "retrieved/submitted canary traces below the loss threshold (FR-036)" }
  }

  # Per function (FR-040, FR-041, FR-061): Errors, and Duration p95 at 80 % of the timeout unless
  # the stack map gives a duration_alarm override with its reason.
  function_alarms = merge(
    {
      for key, fn in var.functions : "${key}-errors" => {
        namespace   = "AWS/Lambda", metric = "Errors", dimensions = tomap({ FunctionName = var.function_names[key] })
        statistic   = "Sum", period = var.alarm_period_s, evaluation_periods = 1, datapoints = 1
        comparison  = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching"
        description = "${var.function_names[key]} invocations failed"
      }
    },
    {
      for key, fn in var.functions : "${key}-duration" => {
        namespace  = "AWS/Lambda", metric = "Duration", dimensions = tomap({ FunctionName = var.function_names[key] })
        statistic  = fn.duration_alarm == null ? "p95" : fn.duration_alarm.statistic
        period     = var.alarm_period_s, evaluation_periods = 1, datapoints = 1
        comparison = "GreaterThanThreshold"
        threshold  = fn.duration_alarm == null ? fn.timeout_s * 1000 * var.duration_alarm_ratio : fn.duration_alarm.threshold_ms
        missing    = "notBreaching"
        description = (fn.duration_alarm == null ?
          "${var.function_names[key]} p95 duration above ${var.duration_alarm_ratio * 100} % of its ${fn.timeout_s} s timeout" :
        "${var.function_names[key]} duration: ${fn.duration_alarm.reason}")
      }
    },
  )

  custom_alarms = merge([
    for metric, spec in local.metric_alarms : {
      for key in spec.functions : "${key}-${metric}" => {
        namespace          = var.metric_namespaces[spec.namespace], metric = metric
        dimensions         = tomap({ FunctionName = var.function_names[key] })
        statistic          = spec.statistic, period = spec.period
        evaluation_periods = spec.evaluation_periods, datapoints = spec.evaluation_periods
        comparison         = spec.comparison, threshold = spec.threshold, missing = spec.missing
        description        = "${var.function_names[key]}: ${spec.summary}"
      }
    }
  ]...)

  # FR-036 per probe path (lambdas/canary/probes.py): ProbeTreeComplete is 1 per run whose whole
  # trace tree arrived, so its Average is the complete ratio; below 1 in two consecutive runs pages
  # (FR-020); silence (the canary not probing) is a failure. ProbeTreeLost tells lost from partial.
  probe_alarms = {
    for path in ["batch", "stream"] : "canary-ProbeTreeComplete-${path}" => {
      namespace   = local.canary_namespace, metric = "ProbeTreeComplete"
      dimensions  = tomap({ FunctionName = var.function_names["canary"], ProbePath = path })
      statistic   = "Average", period = 300, evaluation_periods = 2, datapoints = 2
      comparison  = "LessThanThreshold", threshold = 1, missing = "breaching"
      description = "${var.function_names["canary"]}: the ${path} probe's trace tree arrived incomplete (partial or lost) in 2 consecutive runs"
    }
  }

  # A dead letter is a lost event until someone looks.
  queue_alarms = {
    for key, name in var.queue_names : "${key}-messages" => {
      namespace   = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", dimensions = tomap({ QueueName = name })
      statistic   = "Maximum", period = var.alarm_period_s, evaluation_periods = 1, datapoints = 1
      comparison  = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching"
      description = "${name} holds dead letters"
    }
  }

  api_alarms = {
    "api-5xx" = {
      namespace   = "AWS/ApiGateway", metric = "5XXError", dimensions = tomap({ ApiName = var.api_name, Stage = var.api_stage_name })
      statistic   = "Sum", period = var.alarm_period_s, evaluation_periods = 1, datapoints = 1
      comparison  = "GreaterThanOrEqualToThreshold", threshold = 5, missing = "notBreaching"
      description = "${var.api_name}/${var.api_stage_name} answered 5 or more 5XX in ${var.alarm_period_s} s"
    }
  }

  alarms = merge(local.function_alarms, local.custom_alarms, local.probe_alarms, local.queue_alarms, local.api_alarms)
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = startswith(each.value.statistic, "p") ? null : each.value.statistic
  extended_statistic  = startswith(each.value.statistic, "p") ? each.value.statistic : null
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  actions_enabled     = true
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}

# FR-038 / SC-016: X-Ray cost, account-wide, in us-east-1 where billing metrics live. Alarm actions
# must be in the alarm's region: these notify a billing topic there.
resource "aws_cloudwatch_metric_alarm" "billing" {
  provider = aws.us_east_1
  for_each = var.create_billing_alarms ? { for t in var.billing_thresholds_usd : tostring(t) => t } : {}

  alarm_name          = "${var.name_prefix}-xray-cost-${each.key}usd"
  alarm_description   = "X-Ray estimated charges this month reached $${each.key} (FR-038)"
  namespace           = "AWS/Billing"
  metric_name         = "EstimatedCharges"
  dimensions          = { ServiceName = "AWSXRay", Currency = "USD" }
  statistic           = "Maximum"
  period              = 21600
  evaluation_periods  = 1
  datapoints_to_alarm = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = each.value
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.billing[0].arn]
}

resource "aws_kms_key" "billing" {
  provider = aws.us_east_1
  count    = var.create_billing_alarms ? 1 : 0

  description             = "${var.name_prefix}: billing alarm topic (us-east-1)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.billing_key[0].json
}

data "aws_iam_policy_document" "billing_key" {
  count = var.create_billing_alarms ? 1 : 0

  statement {
    sid       = "AccountRootManagesKeyAndEnablesIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic" "billing" {
  provider = aws.us_east_1
  count    = var.create_billing_alarms ? 1 : 0

  name              = "${var.name_prefix}-billing-alarms"
  kms_master_key_id = aws_kms_key.billing[0].arn
}

resource "aws_sns_topic_policy" "billing" {
  provider = aws.us_east_1
  count    = var.create_billing_alarms ? 1 : 0

  arn    = aws_sns_topic.billing[0].arn
  policy = data.aws_iam_policy_document.billing_topic[0].json
}

data "aws_iam_policy_document" "billing_topic" {
  count = var.create_billing_alarms ? 1 : 0

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.billing[0].arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# People: the same addresses on the alarms, canary alert and billing topics.
resource "aws_sns_topic_subscription" "alarms_email" {
  for_each = toset(var.alarm_email_endpoints)

  topic_arn = var.alarm_topic_arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic_subscription" "canary_email" {
  for_each = toset(var.alarm_email_endpoints)

  topic_arn = var.canary_alert_topic_arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic_subscription" "billing_email" {
  provider = aws.us_east_1
  for_each = var.create_billing_alarms ? toset(var.alarm_email_endpoints) : toset([])

  topic_arn = aws_sns_topic.billing[0].arn
  protocol  = "email"
  endpoint  = each.value
}
