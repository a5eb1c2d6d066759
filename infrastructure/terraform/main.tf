# Root module: the stack map (stack.json) drives everything; modules receive its parts.
locals {
  stack       = jsondecode(file("${path.module}/stack.json"))
  project     = local.stack.project
  name_prefix = "${local.project}-${var.environment}"
  # The project's one Python version (zips, image, tests, packaging), kept in the stack map.
  lambda_runtime = "python${local.stack.python_version}"

  tags = {
    Project     = local.project
    Environment = var.environment
    ManagedBy   = "terraform"
  }
}

module "data" {
  source = "./modules/data"

  name_prefix         = local.name_prefix
  tables              = local.stack.tables
  topics              = local.stack.topics
  queues              = local.stack.queues
  secrets             = local.stack.secrets
  deletion_protection = var.dynamodb_deletion_protection
}

module "lambda_functions" {
  source = "./modules/lambda_functions"

  project              = local.project
  environment          = var.environment
  name_prefix          = local.name_prefix
  functions            = local.stack.functions
  metric_namespaces    = local.stack.metric_namespaces
  package_dir          = startswith(var.lambda_package_dir, "/") ? var.lambda_package_dir : abspath("${path.module}/${var.lambda_package_dir}")
  runtime              = local.lambda_runtime
  architecture         = var.lambda_architecture
  sse_image_digest     = var.sse_image_digest
  reserved_concurrency = var.reserved_concurrency
  log_retention_days   = var.log_retention_days
  kms_key_arn          = module.data.kms_key_arn
  table_names          = module.data.table_names
  table_arns           = module.data.table_arns
  topic_arns           = module.data.topic_arns
  queue_urls           = module.data.queue_urls
  queue_arns           = module.data.queue_arns
  secret_names         = module.data.secret_names
  secret_arns          = module.data.secret_arns
  alias_name           = local.stack.function_alias
  cors_allow_origin    = var.cors_allow_origin
  alerts_kms_key_arn   = module.data.alerts_kms_key_arn
  alerting_topics      = module.data.alerting_topics
}

module "auth" {
  source = "./modules/auth"

  name_prefix         = local.name_prefix
  deletion_protection = var.cognito_deletion_protection
}

module "edge" {
  source = "./modules/edge"

  name_prefix                = local.name_prefix
  dashboard_function_name    = module.lambda_functions.function_names["dashboard"]
  dashboard_invoke_arn       = module.lambda_functions.alias_invoke_arns["dashboard"]
  function_alias             = module.lambda_functions.alias_name
  origin_verify_header       = local.stack.edge.origin_verify_header
  sse_function_name          = module.lambda_functions.function_names["sse_streaming"]
  cors_allow_origin          = var.cors_allow_origin
  manage_api_gateway_account = var.manage_api_gateway_account
  log_retention_days         = var.log_retention_days
  kms_key_arn                = module.data.kms_key_arn
  api_throttling_rate_limit  = var.api_throttling_rate_limit
  api_throttling_burst_limit = var.api_throttling_burst_limit
  user_pool_arn              = module.auth.user_pool_arn
  cognito_web_client_id      = module.auth.web_client_id
  price_class                = var.cloudfront_price_class
  acm_certificate_arn        = var.acm_certificate_arn
  domain_aliases             = var.domain_aliases
}

module "observability" {
  source = "./modules/observability"

  providers = {
    aws           = aws
    aws.us_east_1 = aws.us_east_1
  }

  environment                = var.environment
  name_prefix                = local.name_prefix
  functions                  = local.stack.functions
  function_names             = module.lambda_functions.function_names
  log_group_names            = module.lambda_functions.log_group_names
  metric_namespaces          = local.stack.metric_namespaces
  alarm_topic_arn            = module.data.topic_arns["alarms"]
  canary_alert_topic_arn     = module.data.topic_arns["canary_alerts"]
  queue_names                = module.data.queue_names
  api_name                   = module.edge.api_name
  api_stage_name             = module.edge.api_stage_name
  cloudfront_distribution_id = module.edge.cloudfront_distribution_id
  sampling_rate              = var.xray_sampling_rate
  sampling_reservoir         = var.xray_sampling_reservoir
  alarm_email_endpoints      = var.alarm_email_endpoints
  create_billing_alarms      = var.create_billing_alarms
  billing_thresholds_usd     = var.xray_billing_thresholds_usd
}
