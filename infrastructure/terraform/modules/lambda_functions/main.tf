data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  function_names = { for key, fn in var.functions : key => "${var.name_prefix}-${key}" }
  # One service-map node per function: POWERTOOLS_SERVICE_NAME, and for the OTel (image) function
  # OTEL_SERVICE_NAME too, equal to it (FR-047, FR-071). The physical name, so the environment is in
  # it: dev and preprod share an account, and X-Ray groups filter on service("<name>").
  service_names = local.function_names

  zip_functions   = { for key, fn in var.functions : key => fn if fn.package == "zip" }
  image_functions = { for key, fn in var.functions : key => fn if fn.package == "image" }
  # Only zip functions have a package file (a for-filter, so no file is read for the image).
  zip_hashes = { for key, fn in local.zip_functions : key => filebase64sha256("${var.package_dir}/${key}.zip") }
  # Image functions run a digest, never a tag.
  image_uris = { for key, fn in local.image_functions : key => "${aws_ecr_repository.image[key].repository_url}@${var.sse_image_digest}" }

  # Env references of the stack map: table:<key> -> name, topic:<key> -> ARN, queue:<key> -> URL,
  # secret:<key> -> name. Other values are literals in which $${env} is the environment.
  references = {
    table  = var.table_names
    topic  = var.topic_arns
    queue  = var.queue_urls
    secret = var.secret_names
  }
  resolved_env = {
    for key, fn in var.functions : key => {
      for name, value in fn.env : name => (
        can(regex("^(table|topic|queue|secret):", value)) ?
        local.references[split(":", value)[0]][join(":", slice(split(":", value), 1, length(split(":", value))))] :
        replace(value, "$${env}", var.environment)
      )
    }
  }
  # No propagator variable (FR-068: the code sets the propagator) and no exec wrapper (FR-046: no ADOT
  # auto-instrumentation): tests/infra prove neither name appears anywhere in the infrastructure.
  function_env = {
    for key, fn in var.functions : key => merge(
      local.resolved_env[key],
      { POWERTOOLS_SERVICE_NAME = local.service_names[key] },
      # The map's literal is the devstack's; AWS gets the deployment's origin.
      contains(keys(fn.env), "CORS_ALLOW_ORIGINS") ? { CORS_ALLOW_ORIGINS = var.cors_allow_origin } : {},
      fn.package == "image" ? { OTEL_SERVICE_NAME = local.service_names[key] } : {}
    )
  }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = var.functions

  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# The SSE image's repository: `make deploy-sse` pushes here and prints the digest Terraform deploys.
resource "aws_ecr_repository" "image" {
  for_each = local.image_functions

  # docker/sse/deploy.sh pushes to sentiment-analyzer-<env>-sse (one image function at most).
  name                 = "${var.name_prefix}-sse"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }
}

resource "aws_ecr_lifecycle_policy" "image" {
  for_each = local.image_functions

  repository = aws_ecr_repository.image[each.key].name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 20 most recent images (a rollback needs the previous digests)"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 20 }
      action       = { type = "expire" }
    }]
  })
}

# Lambda itself pulls the image: only for this function.
resource "aws_ecr_repository_policy" "image" {
  for_each = local.image_functions

  repository = aws_ecr_repository.image[each.key].name
  policy     = data.aws_iam_policy_document.ecr_lambda_pull[each.key].json
}

data "aws_iam_policy_document" "ecr_lambda_pull" {
  for_each = local.image_functions

  statement {
    sid     = "LambdaPull"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.function_names[each.key]}"]
    }
  }
}

resource "aws_lambda_function" "this" {
  for_each = var.functions

  function_name = local.function_names[each.key]
  description   = "${var.project} ${each.key} (${var.environment})"
  role          = aws_iam_role.this[each.key].arn
  architectures = [var.architecture]
  memory_size   = each.value.memory_mb
  timeout       = each.value.timeout_s

  package_type     = each.value.package == "image" ? "Image" : "Zip"
  handler          = each.value.package == "zip" ? each.value.handler : null
  runtime          = each.value.package == "zip" ? var.runtime : null
  filename         = each.value.package == "zip" ? "${var.package_dir}/${each.key}.zip" : null
  source_code_hash = lookup(local.zip_hashes, each.key, null)
  image_uri        = lookup(local.image_uris, each.key, null)

  # The stack map's value (the devstack's cap too), overridden per environment by var.reserved_concurrency.
  reserved_concurrent_executions = lookup(var.reserved_concurrency, each.key, coalesce(each.value.reserved_concurrency, -1))

  # Every apply that changes code or configuration publishes a version; the alias below moves to it.
  publish = true

  dynamic "image_config" {
    for_each = each.value.package == "image" ? [each.value.handler] : []
    content {
      command = [image_config.value]
    }
  }

  tracing_config {
    mode = "Active"
  }

  environment {
    variables = local.function_env[each.key]
  }

  dynamic "dead_letter_config" {
    for_each = each.value.dead_letter_queue == null ? [] : [each.value.dead_letter_queue]
    content {
      target_arn = var.queue_arns[dead_letter_config.value]
    }
  }

  # The image function's first pull needs the repository policy in place.
  depends_on = [aws_cloudwatch_log_group.this, aws_iam_role_policy.this, aws_ecr_repository_policy.image]
}

# One alias per function on the version this apply published: every trigger invokes the alias, so
# a rollback is `aws lambda update-alias --function-version <previous>` and a gradual deploy is the
# alias's routing_config. https://docs.aws.amazon.com/lambda/latest/dg/configuration-aliases.html
resource "aws_lambda_alias" "this" {
  for_each = var.functions

  name             = var.alias_name
  description      = "What ${local.function_names[each.key]}'s triggers invoke"
  function_name    = aws_lambda_function.this[each.key].function_name
  function_version = aws_lambda_function.this[each.key].version
}

# Triggers from the map: EventBridge schedules and SNS subscriptions (API Gateway and the Function
# URL belong to the edge module).
locals {
  scheduled  = { for key, fn in var.functions : key => fn if fn.trigger.type == "schedule" }
  subscribed = { for key, fn in var.functions : key => fn if fn.trigger.type == "sns" }
}

resource "aws_cloudwatch_event_rule" "schedule" {
  for_each = local.scheduled

  name                = local.function_names[each.key]
  description         = "Runs ${local.function_names[each.key]} on ${each.value.trigger.expression}"
  schedule_expression = each.value.trigger.expression
}

resource "aws_cloudwatch_event_target" "schedule" {
  for_each = local.scheduled

  rule = aws_cloudwatch_event_rule.schedule[each.key].name
  arn  = aws_lambda_alias.this[each.key].arn
}

resource "aws_lambda_permission" "schedule" {
  for_each = local.scheduled

  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.key].function_name
  qualifier     = aws_lambda_alias.this[each.key].name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[each.key].arn
}

# SNS active tracing carries the trace header to the subscriber (FR-013).
resource "aws_sns_topic_subscription" "trigger" {
  for_each = local.subscribed

  topic_arn = var.topic_arns[each.value.trigger.topic]
  protocol  = "lambda"
  endpoint  = aws_lambda_alias.this[each.key].arn
}

resource "aws_lambda_permission" "sns" {
  for_each = local.subscribed

  statement_id  = "AllowSnsTopic"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.key].function_name
  qualifier     = aws_lambda_alias.this[each.key].name
  principal     = "sns.amazonaws.com"
  source_arn    = var.topic_arns[each.value.trigger.topic]
}
