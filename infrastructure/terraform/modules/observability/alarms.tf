# Every alarm of the stack comes from the maps below through one resource (for_each): the
# dashboard's alarm widget lists the same set (FR-044, SC-022). All notify the alarms topic.
locals {
  # The function behind the Function URL (the SSE origin).
  sse_function_key = one([for key, fn in var.functions : key if fn.trigger.type == "function_url"])
  app_namespace    = var.metric_namespaces["app"]
  canary_namespace = var.metric_namespaces["canary"]

  # specs/contracts.md, "Metrics": one alarm per metric and emitting function, dimension exactly
  # FunctionName = the function's physical name. treat_missing_data per FR-045: breaching where
  # silence means failure (heartbeats, the canary), notBreaching for error counts. `why` justifies
  # threshold and treat_missing_data in one line (it ends every alarm's description); `widget` is
  # the dashboard graph the alarm's metric is drawn on (dashboard.tf).
  metric_alarms = {
    NewItemsIngested                 = { namespace = "app", functions = ["ingestion"], statistic = "SampleCount", period = 1800, evaluation_periods = 1, comparison = "LessThanThreshold", threshold = 1, missing = "breaching", summary = "ingestion stopped reporting: no NewItemsIngested sample (0 included) in 30 min", why = "SampleCount counts runs that reported (0 new items included), so quiet news never pages; no sample in 30 min (6 scheduled runs) is a stopped ingestion: breaching" }
    HighLatencyAlert                 = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "an ingestion run took over 30 s", why = "one slow run is worth a look; no sample means no slow run: notBreaching" }
    AnalysisErrors                   = { namespace = "app", functions = ["analysis"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "sentiment analysis failed", why = "every failed analysis is a lost score; an error count is silent when nothing failed: notBreaching" }
    StuckItems                       = { namespace = "app", functions = ["metrics"], statistic = "Maximum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "breaching", summary = "items pending for over 5 min (missing: the monitor of monitors is silent)", why = "the metrics Lambda reports every minute, 0 included: one stuck item pages, and its silence is the monitor failing: breaching" }
    MetricsLambdaErrors              = { namespace = "app", functions = ["metrics"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "the metrics Lambda failed a check", why = "a failed check blinds StuckItems; error count: notBreaching" }
    NotificationDeliveryFailures     = { namespace = "app", functions = ["notification"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "an alert e-mail was not delivered", why = "an undelivered alert is the product failing its user; error count: notBreaching" }
    AlertEmailsCapped                = { namespace = "app", functions = ["notification"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "an alert e-mail was held back by a per-user or per-address daily cap", why = "a capped e-mail is a user's alert not delivered, or someone pushing the caps: look at once; a count of events, silent when none: notBreaching" }
    EventLatencyMs                   = { namespace = "app", functions = ["sse_streaming"], statistic = "p95", period = 300, evaluation_periods = 1, comparison = "GreaterThanThreshold", threshold = 3000, missing = "notBreaching", summary = "p95 SSE event latency over 3 s", why = "the SSE latency target is 3 s at p95; no streams, no samples: notBreaching" }
    PollDurationMs                   = { namespace = "app", functions = ["sse_streaming"], statistic = "p95", period = 300, evaluation_periods = 1, comparison = "GreaterThanThreshold", threshold = 1000, missing = "notBreaching", summary = "p95 SSE DynamoDB poll over 1 s", why = "a poll over 1 s at p95 starves the 2 s poll loop; no streams, no samples: notBreaching" }
    CircuitBreakerPersistenceFailure = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent paths 1-2: circuit-breaker load/save failed", why = "silent path: any occurrence loses breaker state; error count: notBreaching" }
    AuditEventPersistenceFailure     = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 3: audit-trail write failed", why = "silent path: any occurrence loses an audit record; error count: notBreaching" }
    DownstreamNotificationFailure    = { namespace = "app", functions = ["ingestion", "analysis"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 4: downstream SNS publish failed", why = "silent path: any occurrence loses an SNS hand-off; error count: notBreaching" }
    TimeseriesFanoutPartialFailure   = { namespace = "app", functions = ["analysis"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 5: time-series fan-out write failed", why = "silent path: any occurrence loses a time-series bucket; error count: notBreaching" }
    SelfHealingItemFetchFailure      = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 6: self-healing item fetch failed", why = "silent path: any occurrence leaves an item unhealed; error count: notBreaching" }
    ParallelFetcherErrors            = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "silent path 7: a parallel news fetch failed", why = "silent path: any occurrence drops one source of news; error count: notBreaching" }
    MalformedArticles                = { namespace = "app", functions = ["ingestion"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "a news source sent articles that could not be read (skipped; the same metric with a Source dimension names the source)", why = "a skipped article is news lost from a source that otherwise works; count: notBreaching" }
    # The canary (FR-020): pages after two failed runs in a row; silence is a failure.
    CanaryHealth    = { namespace = "canary", functions = ["canary"], statistic = "Minimum", period = 300, evaluation_periods = 2, comparison = "LessThanThreshold", threshold = 1, missing = "breaching", summary = "the canary found X-Ray or CloudWatch unhealthy (or did not report) in 2 consecutive periods", why = "two failed or missing runs in a row (one can be a transient X-Ray delay); silence is the canary failing: breaching" }
    trace_data_loss = { namespace = "canary", functions = ["canary"], statistic = "Sum", period = 300, evaluation_periods = 1, comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching", summary = "retrieved/submitted canary traces below the loss threshold (FR-036)", why = "one run below the loss threshold means X-Ray lost traces; count: notBreaching" }
  }

  # Per function (FR-040, FR-041, FR-061): Errors, Throttles, and Duration p95 at 80 % of the
  # timeout unless the stack map gives a duration_alarm override with its reason.
  function_alarms = merge(
    {
      for key, fn in var.functions : "${key}-errors" => {
        namespace = "AWS/Lambda", metric = "Errors", dimensions = tomap({ FunctionName = var.function_names[key] })
        widget    = "Lambda errors and throttles"
        summary   = "${var.function_names[key]} invocations failed"
        why       = "every failed invocation is a lost event or request; no invocations, no errors: notBreaching"
      }
    },
    {
      # Reserved concurrency caps some functions: a throttle is an event refused (a 429 on the URL).
      for key, fn in var.functions : "${key}-throttles" => {
        namespace = "AWS/Lambda", metric = "Throttles", dimensions = tomap({ FunctionName = var.function_names[key] })
        widget    = "Lambda errors and throttles"
        summary   = "${var.function_names[key]} was throttled (reserved or account concurrency reached)"
        why       = "one throttle is a request refused or an async event delayed; Lambda sends no datapoint without throttles: notBreaching"
      }
    },
    {
      for key, fn in var.functions : "${key}-duration" => {
        namespace  = "AWS/Lambda", metric = "Duration", dimensions = tomap({ FunctionName = var.function_names[key] })
        statistic  = fn.duration_alarm == null ? "p95" : fn.duration_alarm.statistic
        comparison = "GreaterThanThreshold"
        threshold  = fn.duration_alarm == null ? fn.timeout_s * 1000 * var.duration_alarm_ratio : fn.duration_alarm.threshold_ms
        widget     = "Lambda duration"
        summary = (fn.duration_alarm == null ?
          "${var.function_names[key]} p95 duration above ${var.duration_alarm_ratio * 100} % of its ${fn.timeout_s} s timeout" :
        "${var.function_names[key]} duration: ${fn.duration_alarm.reason}")
        why = "warns before the hard timeout (FR-041); no invocations, no duration: notBreaching"
      }
    },
    {
      # Lambda could not write an async event that failed all retries to its DLQ: the event is gone.
      for key, fn in var.functions : "${key}-dead-letter-errors" => {
        namespace = "AWS/Lambda", metric = "DeadLetterErrors", dimensions = tomap({ FunctionName = var.function_names[key] })
        widget    = "Dead-letter queues"
        summary   = "${var.function_names[key]} could not write a failed event to its dead-letter queue"
        why       = "one is an event lost for good; Lambda sends no datapoint without such errors: notBreaching"
      } if fn.dead_letter_queue != null
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
        widget             = spec.namespace == "canary" ? "Canary" : "Application metrics"
        summary            = "${var.function_names[key]}: ${spec.summary}"
        why                = spec.why
      }
    }
  ]...)

  # FR-036 per probe path (lambdas/canary/probes.py): ProbeTreeComplete is 1 per run whose whole
  # trace tree arrived, so its Average is the complete ratio; ProbeTreeLost tells lost from partial.
  probe_alarms = {
    for path in ["batch", "stream"] : "canary-ProbeTreeComplete-${path}" => {
      namespace  = local.canary_namespace, metric = "ProbeTreeComplete"
      dimensions = tomap({ FunctionName = var.function_names["canary"], ProbePath = path })
      statistic  = "Average", period = 300, evaluation_periods = 2, datapoints = 2
      comparison = "LessThanThreshold", threshold = 1, missing = "breaching", widget = "Canary"
      summary    = "${var.function_names["canary"]}: the ${path} probe's trace tree arrived incomplete (partial or lost) in 2 consecutive runs"
      why        = "one incomplete tree can be X-Ray's own delay, two in a row is traces being lost (FR-020); the canary not probing is a failure too: breaching"
    }
  }

  # A dead letter is a lost event until someone looks: the first one pages, and a letter nobody has
  # handled in a day pages again, well before the queue's 14-day retention drops it.
  queue_alarms = merge(
    {
      for key, name in var.queue_names : "${key}-messages" => {
        namespace = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", dimensions = tomap({ QueueName = name })
        statistic = "Maximum", widget = "Dead-letter queues"
        summary   = "${name} holds dead letters"
        why       = "one dead letter is one lost event; SQS stops sending datapoints for an idle empty queue: notBreaching"
      }
    },
    {
      for key, name in var.queue_names : "${key}-oldest-age" => {
        namespace = "AWS/SQS", metric = "ApproximateAgeOfOldestMessage", dimensions = tomap({ QueueName = name })
        statistic = "Maximum", threshold = var.dlq_max_age_s, widget = "Dead-letter queues"
        summary   = "a dead letter in ${name} has waited ${var.dlq_max_age_s} s unhandled"
        why       = "depth pages once; age pages again while nobody drains the queue, long before retention drops the letter; idle empty queue: notBreaching"
      }
    },
  )

  # The entry points (API Gateway stage, the SSE Function URL) and the edge in front of them.
  api_alarms = {
    "api-5xx" = {
      namespace = "AWS/ApiGateway", metric = "5XXError", dimensions = tomap({ ApiName = var.api_name, Stage = var.api_stage_name })
      threshold = 5, widget = "API, SSE origin and edge"
      summary   = "${var.api_name}/${var.api_stage_name} answered 5 or more 5XX in ${var.alarm_period_s} s"
      why       = "5 in a period is a failing backend, not one client's bad luck (the dashboard's own faults page through its Errors alarm); no traffic: notBreaching"
    }
    # https://docs.aws.amazon.com/lambda/latest/dg/urls-monitoring.html: FunctionName aggregates the
    # URLs of every alias of the function.
    "sse-origin-5xx" = {
      namespace = "AWS/Lambda", metric = "Url5xxCount", dimensions = tomap({ FunctionName = var.function_names[local.sse_function_key] })
      widget    = "API, SSE origin and edge"
      summary   = "the SSE Function URL answered 5xx (function error, timeout or 429 past reserved concurrency is 4xx, not counted)"
      why       = "a stream is one long request: one 5xx is one viewer without live updates; no requests, no datapoint: notBreaching"
    }
  }

  # FR-034 / SC-013: the X-Ray groups' trace metrics (AWS/X-Ray, dimension GroupName), published
  # for every group: https://docs.aws.amazon.com/xray/latest/devguide/xray-console-groups.html
  xray_alarms = {
    for metric in ["ApproximateFaultCount", "ApproximateErrorCount"] : "xray-faults-group-${lower(trimprefix(metric, "Approximate"))}" => {
      namespace = "AWS/X-Ray", metric = metric, dimensions = tomap({ GroupName = aws_xray_group.this["faults"].group_name })
      widget    = "X-Ray groups"
      summary   = "sampled traces of ${var.name_prefix} carry a ${metric == "ApproximateFaultCount" ? "fault (5xx)" : "error (4xx)"}"
      why       = "any sampled fault or error of this environment is a trace to read; X-Ray sends no datapoint without one: notBreaching"
    }
  }

  # Out-of-memory kills, read from the function's log (Lambda publishes no metric for them). The SSE
  # function is sized at 1.3 x its measured peak (README, "Sizing the SSE function"), so an OOM kill
  # is the first sign that the peak grew. The log text, both forms seen from Lambda (public reports,
  # not an AWS page: AWS documents no OOM log line): the REPORT line's "Error Type: Runtime.OutOfMemory"
  # (e.g. nasa-gcn/gcn.nasa.gov#3628) and the older "Error: Runtime exited with error: signal: killed"
  # + "Runtime.ExitError" (DataDog/datadog-lambda-extension#187). `?` ORs the terms:
  # https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html
  log_metric_filters = {
    for key in [local.sse_function_key] : "${key}-out-of-memory" => {
      log_group = var.log_group_names[key]
      pattern   = "?\"Runtime.OutOfMemory\" ?\"Runtime exited with error: signal: killed\""
      namespace = "${var.name_prefix}/LambdaLogs"
      metric    = "OutOfMemory-${key}"
      summary   = "${var.function_names[key]} was killed for running out of memory"
    }
  }
  # A metric filter cannot set a fixed dimension, so each metric is named for its function, dimensionless.
  log_alarms = {
    for name, filter in local.log_metric_filters : name => {
      namespace = filter.namespace, metric = filter.metric, dimensions = tomap({})
      widget    = "Lambda errors and throttles"
      summary   = filter.summary
      why       = "one kill ends every stream of the execution environment and means the measured memory peak grew past the sizing's headroom; the filter writes no datapoint without a kill: notBreaching"
    }
  }

  # What most alarms share; the maps above give only what differs, merged over these here.
  alarm_defaults = {
    statistic  = "Sum", period = var.alarm_period_s, evaluation_periods = 1, datapoints = 1
    comparison = "GreaterThanOrEqualToThreshold", threshold = 1, missing = "notBreaching"
  }
  alarms = {
    for key, alarm in merge(local.function_alarms, local.custom_alarms, local.probe_alarms, local.queue_alarms,
    local.api_alarms, local.xray_alarms, local.log_alarms) : key => merge(local.alarm_defaults, alarm)
  }

  # CloudFront publishes its metrics in us-east-1 only (dimension Region = Global): these alarms and
  # their topic live there. https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/programming-cloudwatch-metrics.html
  global_alarms = {
    "cloudfront-5xx-rate" = {
      namespace  = "AWS/CloudFront", metric = "5xxErrorRate", dimensions = tomap({ DistributionId = var.cloudfront_distribution_id, Region = "Global" })
      statistic  = "Average", period = var.alarm_period_s, evaluation_periods = 3, datapoints = 2
      comparison = "GreaterThanThreshold", threshold = 5, missing = "notBreaching", widget = "API, SSE origin and edge"
      summary    = "over 5 % of the distribution's responses were 5xx in 2 of 3 periods"
      why        = "a rate, so one failed request on a quiet night does not page, 2 of 3 periods so a blip does not either; no requests: notBreaching"
    }
  }
}

resource "aws_cloudwatch_log_metric_filter" "this" {
  for_each = local.log_metric_filters

  name           = "${var.name_prefix}-${each.key}"
  log_group_name = each.value.log_group
  pattern        = each.value.pattern

  metric_transformation {
    name      = each.value.metric
    namespace = each.value.namespace
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "${each.value.summary}. Why: ${each.value.why}"
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

# The global alarms (CloudFront), in us-east-1 where CloudFront's metrics live; same shape as `this`.
resource "aws_cloudwatch_metric_alarm" "global" {
  provider = aws.us_east_1
  for_each = local.global_alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = "${each.value.summary}. Why: ${each.value.why}"
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  treat_missing_data  = each.value.missing
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.us_east_1.arn]
  ok_actions          = [aws_sns_topic.us_east_1.arn]
}

# FR-038 / SC-016: X-Ray cost, account-wide, in us-east-1 where billing metrics live. Alarm actions
# must be in the alarm's region: these notify the us-east-1 alarm topic.
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
  alarm_actions       = [aws_sns_topic.us_east_1.arn]
}

resource "aws_kms_key" "us_east_1" {
  provider = aws.us_east_1

  description             = "${var.name_prefix}: the us-east-1 alarm topic (billing, CloudFront)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.us_east_1_key.json
}

data "aws_iam_policy_document" "us_east_1_key" {

  statement {
    sid       = "AccountRootManagesKeyAndEnablesIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
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

resource "aws_sns_topic" "us_east_1" {
  provider = aws.us_east_1

  name              = "${var.name_prefix}-us-east-1-alarms"
  kms_master_key_id = aws_kms_key.us_east_1.arn
}

resource "aws_sns_topic_policy" "us_east_1" {
  provider = aws.us_east_1

  arn    = aws_sns_topic.us_east_1.arn
  policy = data.aws_iam_policy_document.us_east_1_topic.json
}

data "aws_iam_policy_document" "us_east_1_topic" {

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.us_east_1.arn]
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

resource "aws_sns_topic_subscription" "us_east_1_email" {
  provider = aws.us_east_1
  for_each = toset(var.alarm_email_endpoints)

  topic_arn = aws_sns_topic.us_east_1.arn
  protocol  = "email"
  endpoint  = each.value
}
