# X-Ray sampling rules and groups (FR-034). Names allow 32 characters: sa-<env>-...
locals {
  short_prefix = "sa-${var.environment}"

  # Only rules a consumer reads. API Gateway stages read sampling rules: service_name is what X-Ray
  # reports for a stage, <api name>/<stage>. Lambda reads none (it samples the first request each
  # second and 5 % of the rest, unless the caller's trace header already decided) and the SDKs inside
  # a function follow Lambda's decision, so a rule for AWS::Lambda::Function would govern nothing.
  # https://docs.aws.amazon.com/xray/latest/devguide/xray-console-sampling.html
  # https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html
  sampling_rules = {
    api = {
      priority     = 100
      service_type = "AWS::ApiGateway::Stage"
      service_name = "${var.api_name}/${var.api_stage_name}"
    }
  }

  # This environment's nodes: its functions (their segments and the SSE function's OTel spans are
  # named after the service names Terraform sets, which are the function names) and its API stage.
  # dev and preprod share an account: every group is limited to its own environment's services.
  # service("<name>") matches a trace with that node: https://docs.aws.amazon.com/xray/latest/devguide/xray-console-filters.html
  environment_services = join(" OR ", [for name in concat(sort(values(var.function_names)), ["${var.api_name}/${var.api_stage_name}"]) : "service(\"${name}\")"])

  xray_groups = {
    # FR-034 / SC-013: every error or fault, with Insights (which also yields CloudWatch metrics).
    faults = { filter = "(fault = true OR error = true) AND (${local.environment_services})", insights = true }
    # SSE reconnections (FR-048): the SSE code annotates connection_sequence (1, 2, ...).
    sse-reconnects = { filter = "annotation.connection_sequence > 1 AND (${local.environment_services})", insights = false }
    # Canary probe traces (FR-019): the canary annotates canary_probe = true.
    canary = { filter = "annotation.canary_probe = true AND (${local.environment_services})", insights = false }
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
