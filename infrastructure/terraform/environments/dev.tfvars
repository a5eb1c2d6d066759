environment = "dev"
aws_region  = "eu-west-1"

# make deploy-sse prints the digest of the image it pushed.
sse_image_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

# FR-034: 100 % sampling outside prod (the variable's validation refuses anything else).
xray_sampling_rate      = 1.0
xray_sampling_reservoir = 1

log_retention_days           = 14
dynamodb_deletion_protection = false
reserved_concurrency         = {}
alarm_email_endpoints        = []
# Billing alarms are account-wide: dev shares the account with preprod, which owns them.
create_billing_alarms      = false
manage_api_gateway_account = false
api_throttling_rate_limit  = 20
api_throttling_burst_limit = 40
