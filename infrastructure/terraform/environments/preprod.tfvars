environment = "preprod"
aws_region  = "eu-west-1"

sse_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

# FR-034: 100 % sampling outside prod.
xray_sampling_rate      = 1.0
xray_sampling_reservoir = 1

log_retention_days           = 30
dynamodb_deletion_protection = true
reserved_concurrency         = {}
alarm_email_endpoints        = []
create_billing_alarms        = true
manage_api_gateway_account   = true
api_throttling_rate_limit    = 20
api_throttling_burst_limit   = 40
