environment = "prod"
aws_region  = "eu-west-1"

sse_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

# FR-034: prod samples the reservoir (1 trace/s) plus 10 % of the rest. At ~0.5 M traced requests a
# month this stays under $2.50 of X-Ray recording; the $10/$25/$50 billing alarms catch a surprise.
xray_sampling_rate      = 0.1
xray_sampling_reservoir = 1

log_retention_days           = 365
dynamodb_deletion_protection = true
# Runs that must never overlap get one execution. The SSE function runs one stream per execution
# environment, so its reserved concurrency is the cap on concurrent viewers (past it: 429, Throttles).
reserved_concurrency = {
  ingestion     = 1
  metrics       = 1
  canary        = 1
  sse_streaming = 110
}
alarm_email_endpoints      = ["oncall@sentiment-analyzer.invalid"]
create_billing_alarms      = true
manage_api_gateway_account = true
api_throttling_rate_limit  = 50
api_throttling_burst_limit = 100
