# One role per function (the canary's is therefore its own, FR-051), least privilege from the map's
# `iam` block: what each function's code calls, nothing more.
locals {
  # FR-017: every role writes X-Ray (segments, telemetry) and reads sampling rules/targets.
  xray_write_actions = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
  ]
  # What the canary calls (src/lambdas/canary: batch_get_traces, get_metric_statistics), nothing more.
  xray_read_actions       = ["xray:BatchGetTraces"]
  cloudwatch_read_actions = ["cloudwatch:GetMetricStatistics"]

  # Publishing to an alerting topic needs its own key (through SNS), the application's topics the stack key.
  publishes_alerts = { for key, fn in var.functions : key => length(setintersection(fn.iam.sns_publish, var.alerting_topics)) > 0 }
  publishes_app    = { for key, fn in var.functions : key => length(setsubtract(fn.iam.sns_publish, var.alerting_topics)) > 0 }

  # kms:ViaService of every service through which a function touches the stack's key.
  kms_services = {
    for key, fn in var.functions : key => compact([
      length(fn.iam.dynamodb) > 0 ? "dynamodb.${local.region}.amazonaws.com" : "",
      local.publishes_app[key] ? "sns.${local.region}.amazonaws.com" : "",
      length(fn.iam.secrets_read) > 0 ? "secretsmanager.${local.region}.amazonaws.com" : "",
      fn.dead_letter_queue != null ? "sqs.${local.region}.amazonaws.com" : "",
    ])
  }
}

locals {
  # Built from names, not the functions' ARNs: the functions depend on these policies (a cycle otherwise).
  function_arns = {
    for key, name in local.function_names :
    key => "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${name}"
  }
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = var.functions

  name               = local.function_names[each.key]
  description        = "Execution role of ${local.function_names[each.key]} only"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

resource "aws_iam_role_policy" "this" {
  for_each = var.functions

  name   = "least-privilege"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}

data "aws_iam_policy_document" "function" {
  for_each = var.functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  statement {
    sid       = "XRayWrite"
    actions   = local.xray_write_actions
    resources = ["*"] # X-Ray has no resource-level permissions for these actions
  }

  dynamic "statement" {
    for_each = each.value.iam.dynamodb
    content {
      sid     = "DynamoDb${replace(title(statement.key), "_", "")}"
      actions = [for action in statement.value.actions : "dynamodb:${action}"]
      resources = [
        for r in statement.value.resources :
        r == "table" ? var.table_arns[statement.key] : "${var.table_arns[statement.key]}/${r}"
      ]

      # A table shared with other functions: only the items under these partition keys.
      # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
      dynamic "condition" {
        for_each = statement.value.leading_keys == null ? [] : [statement.value.leading_keys]
        content {
          test     = "ForAllValues:StringEquals"
          variable = "dynamodb:LeadingKeys"
          values   = condition.value
        }
      }
    }
  }

  dynamic "statement" {
    for_each = length(each.value.iam.sns_publish) > 0 ? [each.value.iam.sns_publish] : []
    content {
      sid       = "SnsPublish"
      actions   = ["sns:Publish"]
      resources = [for topic in statement.value : var.topic_arns[topic]]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.iam.secrets_read) > 0 ? [each.value.iam.secrets_read] : []
    content {
      sid       = "SecretsRead"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [for secret in statement.value : var.secret_arns[secret]]
    }
  }

  # PutMetricData has no resource-level permission: the namespace condition is the boundary.
  dynamic "statement" {
    for_each = each.value.iam.metric_namespace == null ? [] : [var.metric_namespaces[each.value.iam.metric_namespace]]
    content {
      sid       = "PutMetricDataOwnNamespace"
      actions   = ["cloudwatch:PutMetricData"]
      resources = ["*"]
      condition {
        test     = "StringEquals"
        variable = "cloudwatch:namespace"
        values   = [statement.value]
      }
    }
  }

  dynamic "statement" {
    for_each = each.value.dead_letter_queue == null ? [] : [each.value.dead_letter_queue]
    content {
      sid       = "DeadLetterQueue"
      actions   = ["sqs:SendMessage"]
      resources = [var.queue_arns[statement.value]]
    }
  }

  # The canary's probes (lambdas/canary/probes.py): exactly the named actions on the named functions,
  # unqualified or through any of their versions/aliases ("<arn>:*").
  dynamic "statement" {
    for_each = each.value.iam.lambda_invoke
    content {
      sid     = "Invoke${replace(title(statement.key), "_", "")}"
      actions = [for action in statement.value : "lambda:${action}"]
      # Built from the name: the functions depend on their role policies, so their ARNs would be a cycle.
      resources = [local.function_arns[statement.key], "${local.function_arns[statement.key]}:*"]
    }
  }

  dynamic "statement" {
    for_each = each.value.iam.xray_read ? [1] : []
    content {
      sid       = "XRayRead"
      actions   = local.xray_read_actions
      resources = ["*"] # BatchGetTraces / GetTraceSummaries have no resource-level permissions
    }
  }

  dynamic "statement" {
    for_each = each.value.iam.cloudwatch_read ? [1] : []
    content {
      sid       = "CloudWatchRead"
      actions   = local.cloudwatch_read_actions
      resources = ["*"] # metric reads have no resource-level permissions
    }
  }

  # No ECR statement: Lambda pulls the image with the repository policy (main.tf), not the role.

  dynamic "statement" {
    for_each = length(local.kms_services[each.key]) > 0 ? [local.kms_services[each.key]] : []
    content {
      sid       = "StackKeyThroughItsServices"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = statement.value
      }
    }
  }

  dynamic "statement" {
    for_each = local.publishes_alerts[each.key] ? [1] : []
    content {
      sid       = "AlertsKeyThroughSns"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.alerts_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["sns.${local.region}.amazonaws.com"]
      }
    }
  }
}
