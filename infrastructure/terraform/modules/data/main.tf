data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
}

# Two customer managed keys per environment, one resource each (for_each):
# - stack: tables, topics, queues, secrets and log groups. Application roles get
#   kms:Decrypt/GenerateDataKey through IAM, restricted with kms:ViaService.
# - alerts: the alerting topics (alarms, the canary's) on a key of their own: a disabled or
#   mis-policied stack key silences the application, never the alarms that say so.
# Each key's policy lets IAM policies of this account grant use of the key (the account's
# administrators manage it) and lets one AWS service use it (`service`).
locals {
  kms_keys = {
    stack = {
      alias   = var.name_prefix
      purpose = "DynamoDB, SNS, SQS, Secrets Manager and CloudWatch Logs"
      service = {
        sid       = "CloudWatchLogsEncryptsLogGroups"
        principal = "logs.${local.region}.amazonaws.com"
        actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        condition = {
          test     = "ArnLike"
          variable = "kms:EncryptionContext:aws:logs:arn"
          values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
        }
      }
    }
    alerts = {
      alias   = "${var.name_prefix}-alerts"
      purpose = "alerting SNS topics only (out of band from the stack key)"
      # CloudWatch alarms publish to the encrypted alarms topic.
      # https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html
      service = {
        sid       = "CloudWatchAlarmsPublishToEncryptedTopics"
        principal = "cloudwatch.amazonaws.com"
        actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
        condition = { test = "StringEquals", variable = "aws:SourceAccount", values = [local.account_id] }
      }
    }
  }
}

resource "aws_kms_key" "this" {
  for_each = local.kms_keys

  description             = "${var.name_prefix}: ${each.value.purpose}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms[each.key].json
}

resource "aws_kms_alias" "this" {
  for_each = local.kms_keys

  name          = "alias/${each.value.alias}"
  target_key_id = aws_kms_key.this[each.key].key_id
}

data "aws_iam_policy_document" "kms" {
  for_each = local.kms_keys

  statement {
    sid       = "AccountRootManagesKeyAndEnablesIam"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = each.value.service.sid
    actions   = each.value.service.actions
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = [each.value.service.principal]
    }
    condition {
      test     = each.value.service.condition.test
      variable = each.value.service.condition.variable
      values   = each.value.service.condition.values
    }
  }
}

# The keys were one resource each before the map: an applied stack keeps them (no replacement).
# https://developer.hashicorp.com/terraform/language/modules/develop/refactoring
moved {
  from = aws_kms_key.stack
  to   = aws_kms_key.this["stack"]
}

moved {
  from = aws_kms_key.alerts
  to   = aws_kms_key.this["alerts"]
}

moved {
  from = aws_kms_alias.stack
  to   = aws_kms_alias.this["stack"]
}

moved {
  from = aws_kms_alias.alerts
  to   = aws_kms_alias.this["alerts"]
}

resource "aws_dynamodb_table" "this" {
  for_each = var.tables

  name                        = "${var.name_prefix}-${each.key}"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value.hash_key.name
  range_key                   = each.value.range_key.name
  deletion_protection_enabled = var.deletion_protection

  # Every key attribute of the table and its indexes, once.
  dynamic "attribute" {
    for_each = merge(
      { (each.value.hash_key.name) = each.value.hash_key.type, (each.value.range_key.name) = each.value.range_key.type },
      merge([for g in values(each.value.global_secondary_indexes) : {
        (g.hash_key.name) = g.hash_key.type, (g.range_key.name) = g.range_key.type
      }]...)
    )
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  dynamic "global_secondary_index" {
    for_each = each.value.global_secondary_indexes
    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.hash_key.name
      range_key       = global_secondary_index.value.range_key.name
      projection_type = "ALL"
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl_attribute == null ? [] : [each.value.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this["stack"].arn
  }
}

resource "aws_sns_topic" "this" {
  for_each = var.topics

  name              = "${var.name_prefix}-${each.key}"
  tracing_config    = each.value.tracing
  kms_master_key_id = each.value.alerting ? aws_kms_key.this["alerts"].arn : aws_kms_key.this["stack"].arn
}

# SNS writes its segments only where an X-Ray resource policy lets sns.amazonaws.com do so (the
# console creates one, the API does not): exactly the topics with active tracing, from this account.
# https://docs.aws.amazon.com/xray/latest/devguide/xray-services-sns.html
locals {
  traced_topics = { for key, topic in var.topics : key => topic if topic.tracing == "Active" }
}

resource "aws_xray_resource_policy" "sns" {
  count = length(local.traced_topics) > 0 ? 1 : 0

  policy_name     = "${var.name_prefix}-sns-active-tracing"
  policy_document = data.aws_iam_policy_document.xray_sns.json
}

data "aws_iam_policy_document" "xray_sns" {
  statement {
    sid       = "SnsActiveTracing"
    actions   = ["xray:PutTraceSegments", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
    resources = ["*"] # X-Ray resource policies have no other resource
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [for key in keys(local.traced_topics) : aws_sns_topic.this[key].arn]
    }
  }
}

# Only this account may publish; CloudWatch alarms of this account may publish too.
resource "aws_sns_topic_policy" "this" {
  for_each = var.topics

  arn    = aws_sns_topic.this[each.key].arn
  policy = data.aws_iam_policy_document.topic[each.key].json
}

data "aws_iam_policy_document" "topic" {
  for_each = var.topics

  statement {
    sid       = "AccountPrincipals"
    actions   = ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"]
    resources = [aws_sns_topic.this[each.key].arn]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarms"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this[each.key].arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sqs_queue" "this" {
  for_each = var.queues

  name                              = "${var.name_prefix}-${each.key}"
  message_retention_seconds         = var.dlq_retention_seconds
  kms_master_key_id                 = aws_kms_key.this["stack"].arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_secretsmanager_secret" "this" {
  for_each = var.secrets

  name                    = "${var.name_prefix}-${each.key}"
  description             = each.value.description
  kms_key_id              = aws_kms_key.this["stack"].arn
  recovery_window_in_days = var.secret_recovery_window_days
}
