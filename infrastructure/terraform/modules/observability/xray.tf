# X-Ray sampling rules and groups (FR-034). Names allow 32 characters: sa-<env>-...
locals {
  short_prefix = "sa-${var.environment}"

  # service_name patterns match what X-Ray reports: API Gateway stages as <api name>/<stage>, Lambda
  # functions by their physical names <name_prefix>-<key> (tests/infra check both against the map).
  sampling_rules = {
    api = {
      priority     = 100
      service_type = "AWS::ApiGateway::Stage"
      service_name = "${var.api_name}/${var.api_stage_name}"
    }
    functions = {
      priority     = 110
      service_type = "AWS::Lambda::Function"
      service_name = "${var.name_prefix}-*"
    }
  }

  xray_groups = {
    # FR-034 / SC-013: every error or fault, with Insights (which also yields CloudWatch metrics).
    faults = { filter = "fault = true OR error = true", insights = true }
    # SSE reconnections (FR-048): the SSE code annotates connection_sequence (1, 2, ...).
    sse-reconnects = { filter = "annotation.connection_sequence > 1", insights = false }
    # Canary probe traces (FR-019): the canary annotates canary_probe = true.
    canary = { filter = "annotation.canary_probe = true", insights = false }
  }
}

resource "aws_xray_sampling_rule" "this" {
  for_each = local.sampling_rules

  rule_name      = "${local.short_prefix}-${each.key}"
  priority       = each.value.priority
  version        = 1
  reservoir_size = var.sampling_reservoir
  fixed_rate     = var.sampling_rate
  url_path       = "*"
  host           = "*"
  http_method    = "*"
  service_type   = each.value.service_type
  service_name   = each.value.service_name
  resource_arn   = "*"
}

resource "aws_xray_group" "this" {
  for_each = local.xray_groups

  group_name        = "${local.short_prefix}-${each.key}"
  filter_expression = each.value.filter

  insights_configuration {
    insights_enabled      = each.value.insights
    notifications_enabled = each.value.insights
  }
}
