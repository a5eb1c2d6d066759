# Observability of the stack: alarms (alarms.tf), the CloudWatch dashboard (dashboard.tf) and X-Ray
# sampling rules and groups (xray.tf). Shared lookups live here.
data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
