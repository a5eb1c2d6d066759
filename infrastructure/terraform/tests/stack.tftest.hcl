# `terraform test` with mocked AWS providers: a full apply of the root module, evaluated by Terraform
# itself, then the rules checked on the values it computed. No AWS call is made.
#   terraform test -var-file=environments/<env>.tfvars -var lambda_package_dir=<dir with <key>.zip>
# (tests/infra/test_terraform_cli.py runs it for each environment when terraform and the AWS
# provider are installed.)

mock_provider "aws" {
  source = "./tests/aws_mocks"
}

mock_provider "aws" {
  alias  = "us_east_1"
  source = "./tests/aws_mocks"
}

run "stack" {
  command = apply

  # FR-047 / FR-071: one service name per function, carrying the environment (issue 16, finding 2);
  # the OTel function's OTEL_SERVICE_NAME equals it.
  assert {
    condition     = alltrue([for k, env in module.lambda_functions.environments : env["POWERTOOLS_SERVICE_NAME"] == "sentiment-analyzer-${var.environment}-${k}"])
    error_message = "POWERTOOLS_SERVICE_NAME must be sentiment-analyzer-<env>-<key> on every function."
  }

  # Finding 2: every X-Ray group is limited to this environment's services, never another's.
  assert {
    condition = alltrue([for f in values(module.observability.xray_group_filters) :
      strcontains(f, "service(\"sentiment-analyzer-${var.environment}-ingestion\")") && !strcontains(f, "sentiment-analyzer-${var.environment == "dev" ? "preprod" : "dev"}-")
    ])
    error_message = "X-Ray group filters must name this environment's services only."
  }

  # Finding 2: no sampling rule that no consumer reads (Lambda reads none).
  assert {
    condition     = [for r in values(module.observability.sampling_rules) : r.service_type] == ["AWS::ApiGateway::Stage"]
    error_message = "The only sampling rule is the API stage's: Lambda reads no sampling rules."
  }

  # Finding 1: SNS may write segments for exactly the actively traced topics.
  assert {
    condition     = toset(module.data.xray_sns_topic_arns) == toset([for k, t in module.data.topic_arns : t if local.stack.topics[k].tracing == "Active"]) && module.data.xray_resource_policy_name == "sentiment-analyzer-${var.environment}-sns-active-tracing"
    error_message = "The X-Ray resource policy must cover the Active topics."
  }

  # Finding 3: the SSE origin answers signed requests only; the API requires the edge's header.
  assert {
    condition     = module.edge.sse_function_url_auth_type == "AWS_IAM" && module.edge.origin_verify_header == local.stack.edge.origin_verify_header
    error_message = "The Function URL must be AWS_IAM and the API must require the map's origin-verify header."
  }

  # Finding 6: CORS_ALLOW_ORIGINS comes from var.cors_allow_origin.
  assert {
    condition     = module.lambda_functions.environments["dashboard"]["CORS_ALLOW_ORIGINS"] == var.cors_allow_origin
    error_message = "CORS_ALLOW_ORIGINS must be var.cors_allow_origin."
  }

  # Finding 6: a published version and an alias per function.
  assert {
    condition     = keys(module.lambda_functions.alias_arns) == keys(module.lambda_functions.function_names) && module.lambda_functions.alias_name == local.stack.function_alias
    error_message = "Every function needs its alias."
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
    condition     = length(module.observability.alarms) == 53
    error_message = "53 regional alarms: 7 Errors, 7 Throttles, 7 Duration, 2 DeadLetterErrors, 19 contract metrics, 2 canary probe paths, 2 DLQ depth, 2 DLQ age, API 5XX, SSE origin 5xx, 2 X-Ray group, SSE out-of-memory (README)."
  }

  # Issue 23: the SSE function's out-of-memory kills are counted from its own log group and alarmed.
  assert {
    condition     = length(output.alarm_names) == (var.create_billing_alarms ? 57 : 54)
    error_message = "The alarm count must match the README table (53 regional, CloudFront in us-east-1, billing)."
  }

  # Finding 4: the ingestion heartbeat counts reports, not news.
  assert {
    condition     = module.observability.alarms["sentiment-analyzer-${var.environment}-ingestion-NewItemsIngested"].statistic == "SampleCount" && module.observability.alarms["sentiment-analyzer-${var.environment}-ingestion-NewItemsIngested"].treat_missing_data == "breaching"
    error_message = "NewItemsIngested is a heartbeat: SampleCount < 1, missing = breaching."
  }

  assert {
    condition = alltrue([for a in values(module.observability.alarms) :
      join(",", sort(keys(a.dimensions))) == (a.metric_name == "ProbeTreeComplete" ? "FunctionName,ProbePath" : "FunctionName")
      if contains(["SentimentAnalyzer", "SentimentAnalyzer/Canary", "AWS/Lambda"], a.namespace)
    ])
    error_message = "Function and contract-metric alarms have exactly the FunctionName dimension; canary probe alarms FunctionName and ProbePath."
  }

  assert {
    condition     = [for k, a in module.observability.alarms : a.dimensions["ProbePath"] if a.metric_name == "ProbeTreeComplete"] == ["batch", "stream"]
    error_message = "One ProbeTreeComplete alarm per canary probe path (batch, stream)."
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
