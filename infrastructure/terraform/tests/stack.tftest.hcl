# `terraform test` with mocked AWS providers: a full apply of the root module, evaluated by Terraform
# itself, then the rules checked on the values it computed. No AWS call is made.
#   terraform test -var-file=environments/<env>.tfvars -var lambda_package_dir=<dir with <key>.zip>
# (tests/infra/test_terraform_cli.py runs it for each environment when terraform and the AWS
# provider are installed.)

mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:mock", url = "https://sqs.eu-west-1.amazonaws.com/123456789012/mock" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mock-AbCdEf" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:eu-west-1:123456789012:repository/mock", repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/mock" }
  }
  mock_resource "aws_api_gateway_rest_api" {
    defaults = { execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234", id = "abcdef1234", root_resource_id = "rootid" }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/" }
  }
  mock_resource "aws_cloudfront_function" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:function/mock" }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:distribution/MOCK" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:mock" }
  }
}

mock_provider "aws" {
  alias = "us_east_1"
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:mock", url = "https://sqs.eu-west-1.amazonaws.com/123456789012/mock" }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mock-AbCdEf" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:eu-west-1:123456789012:repository/mock", repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:123456789012:rule/mock" }
  }
  mock_resource "aws_api_gateway_rest_api" {
    defaults = { execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234", id = "abcdef1234", root_resource_id = "rootid" }
  }
  mock_resource "aws_lambda_function_url" {
    defaults = { function_url = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/" }
  }
  mock_resource "aws_cloudfront_function" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:function/mock" }
  }
  mock_resource "aws_cloudfront_distribution" {
    defaults = { arn = "arn:aws:cloudfront::123456789012:distribution/MOCK" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:mock" }
  }
}

run "stack" {
  command = apply

  # FR-047 / FR-071: one service name per function; the OTel function's OTEL_SERVICE_NAME equals it.
  assert {
    condition     = alltrue([for k, env in module.lambda_functions.environments : env["POWERTOOLS_SERVICE_NAME"] == "sentiment-analyzer-${k}"])
    error_message = "POWERTOOLS_SERVICE_NAME must be sentiment-analyzer-<key> on every function."
  }

  assert {
    condition     = module.lambda_functions.environments["sse_streaming"]["OTEL_SERVICE_NAME"] == module.lambda_functions.environments["sse_streaming"]["POWERTOOLS_SERVICE_NAME"]
    error_message = "OTEL_SERVICE_NAME must equal POWERTOOLS_SERVICE_NAME on the SSE function."
  }

  assert {
    condition     = [for k, env in module.lambda_functions.environments : k if contains(keys(env), "OTEL_SERVICE_NAME")] == ["sse_streaming"]
    error_message = "Only the OTel (SSE) function carries OTEL_SERVICE_NAME."
  }

  # FR-046 / FR-068
  assert {
    condition     = alltrue([for env in values(module.lambda_functions.environments) : !contains(keys(env), "OTEL_PROPAGATORS") && !contains(keys(env), "AWS_LAMBDA_EXEC_WRAPPER")])
    error_message = "No function may set OTEL_PROPAGATORS or AWS_LAMBDA_EXEC_WRAPPER."
  }

  # Every reference of the map resolved, every $${env} replaced.
  assert {
    condition = alltrue(flatten([for env in values(module.lambda_functions.environments) : [
      for v in values(env) : !can(regex("^(table|topic|queue|secret):", v)) && !strcontains(v, "$${env}")
    ]]))
    error_message = "An env value is still an unresolved reference or holds $${env}."
  }

  assert {
    condition     = module.lambda_functions.environments["canary"]["INGESTION_FUNCTION_NAME"] == "sentiment-analyzer-${var.environment}-ingestion"
    error_message = "The canary must name this environment's ingestion function."
  }

  assert {
    condition     = module.lambda_functions.environments["ingestion"]["NEWS_TABLE"] == "sentiment-analyzer-${var.environment}-news"
    error_message = "table:news must resolve to the physical table name."
  }

  assert {
    condition     = output.function_names == { for k in keys(module.lambda_functions.environments) : k => "sentiment-analyzer-${var.environment}-${k}" }
    error_message = "Function names must be sentiment-analyzer-<env>-<key>."
  }

  # FR-034: 100 % outside prod; prod uses its validated rate.
  assert {
    condition     = alltrue([for r in values(module.observability.sampling_rules) : r.fixed_rate == (var.environment == "prod" ? var.xray_sampling_rate : 1) && r.reservoir_size >= 1])
    error_message = "Sampling must be 100 % in dev and preprod."
  }

  # FR-040 / FR-041 / FR-042 / FR-043 / FR-045: the alarm set, every one to the alarms topic.
  assert {
    condition     = length(module.observability.alarms) == 35
    error_message = "35 regional alarms: 7 Errors, 7 Duration, 18 contract metrics, 2 DLQs, 1 API 5XX (README)."
  }

  assert {
    condition     = length(output.alarm_names) == (var.create_billing_alarms ? 38 : 35)
    error_message = "The alarm count must match the README table."
  }

  assert {
    condition = alltrue([for a in values(module.observability.alarms) :
      join(",", keys(a.dimensions)) == "FunctionName" if contains(["SentimentAnalyzer", "SentimentAnalyzer/Canary", "AWS/Lambda"], a.namespace)
    ])
    error_message = "Function and contract-metric alarms have exactly the FunctionName dimension."
  }

  assert {
    condition     = alltrue([for a in values(module.observability.alarms) : a.alarm_actions == toset([module.data.topic_arns["alarms"]])])
    error_message = "Every alarm notifies the alarms topic."
  }

  assert {
    condition     = module.observability.alarms["sentiment-analyzer-${var.environment}-canary-CanaryHealth"].treat_missing_data == "breaching" && module.observability.alarms["sentiment-analyzer-${var.environment}-canary-CanaryHealth"].datapoints == 2 && module.observability.alarms["sentiment-analyzer-${var.environment}-canary-CanaryHealth"].evaluation_periods == 2
    error_message = "CanaryHealth: missing = breaching, 2 of 2 periods (FR-020)."
  }

  assert {
    condition     = module.observability.alarms["sentiment-analyzer-${var.environment}-ingestion-duration"].threshold == 96000 && module.observability.alarms["sentiment-analyzer-${var.environment}-ingestion-duration"].statistic == "p95"
    error_message = "Duration alarms are p95 at 80 % of the timeout (ingestion: 120 s -> 96,000 ms)."
  }
}
