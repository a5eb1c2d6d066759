variable "project" {
  description = "Project name; services are <project>-<function key> (POWERTOOLS_SERVICE_NAME, OTEL_SERVICE_NAME)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]+$", var.project))
    error_message = "project must be lowercase letters, digits and hyphens."
  }
}

variable "environment" {
  description = "Environment name; replaces the literal $${env} in the stack map's env values."
  type        = string

  validation {
    condition     = contains(["dev", "preprod", "prod"], var.environment)
    error_message = "environment must be one of dev, preprod, prod."
  }
}

variable "name_prefix" {
  description = "Physical name prefix, <project>-<environment>; functions, roles, log groups and rules are <name_prefix>-<key>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens (3..41 chars)."
  }
}

variable "functions" {
  description = "The stack map's functions: handler, package (zip|image), memory, timeout, reserved concurrency (optional), trigger, env (with table:/topic:/queue:/secret: references), DLQ and IAM needs."
  type = map(object({
    handler   = string
    package   = string
    memory_mb = number
    timeout_s = number
    trigger = object({
      type        = string
      expression  = optional(string)
      topic       = optional(string)
      invoke_mode = optional(string)
    })
    dead_letter_queue    = optional(string)
    reserved_concurrency = optional(number)
    env                  = map(string)
    iam = object({
      dynamodb = optional(map(object({
        actions      = list(string)
        resources    = list(string)
        leading_keys = optional(list(string))
      })), {})
      sns_publish      = optional(list(string), [])
      secrets_read     = optional(list(string), [])
      metric_namespace = optional(string)
      xray_read        = optional(bool, false)
      cloudwatch_read  = optional(bool, false)
      # other functions of the stack this one invokes, by key: the Lambda actions it may call on them
      lambda_invoke = optional(map(list(string)), {})
    })
  }))

  validation {
    condition     = alltrue([for f in values(var.functions) : can(regex("^lambdas\\.[a-z_]+\\.handler\\.lambda_handler$", f.handler))])
    error_message = "handlers must be lambdas.<name>.handler.lambda_handler (code root src/)."
  }

  validation {
    condition = alltrue(flatten([for f in values(var.functions) : [
      for target, actions in f.iam.lambda_invoke : contains(keys(var.functions), target) && length(actions) > 0 &&
      alltrue([for a in actions : contains(["InvokeFunction", "InvokeWithResponseStream"], a)])
    ]]))
    error_message = "iam.lambda_invoke maps a function key of the stack to InvokeFunction / InvokeWithResponseStream."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : contains(["zip", "image"], f.package)])
    error_message = "package must be zip or image."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.reserved_concurrency == null ? true : f.reserved_concurrency >= 0 && f.reserved_concurrency <= 1000])
    error_message = "A function's reserved_concurrency in the stack map must be 0..1000 (leave it out for unreserved)."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.memory_mb >= 128 && f.memory_mb <= 10240 && f.timeout_s >= 1 && f.timeout_s <= 900])
    error_message = "memory_mb must be 128..10240 and timeout_s 1..900."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : contains(["schedule", "sns", "api_gateway", "function_url"], f.trigger.type)])
    error_message = "trigger.type must be schedule, sns, api_gateway or function_url."
  }

  validation {
    condition     = length([for f in values(var.functions) : f if f.package == "image"]) <= 1
    error_message = "one image function at most: sse_image_digest names a single image."
  }

  validation {
    condition = alltrue(flatten([for f in values(var.functions) : [
      for t in values(f.iam.dynamodb) : [for r in t.resources : r == "table" || can(regex("^index/([A-Za-z0-9_.-]+|\\*)$", r))]
    ]]))
    error_message = "iam.dynamodb resources must be \"table\", \"index/<name>\" or \"index/*\"."
  }
}

variable "metric_namespaces" {
  description = "CloudWatch namespaces by stack key (app, canary); a function's iam.metric_namespace picks the only one it may write."
  type        = map(string)

  validation {
    condition     = alltrue([for n in values(var.metric_namespaces) : can(regex("^[A-Za-z0-9/_.#:-]{1,255}$", n)) && !startswith(n, "AWS/")])
    error_message = "metric_namespaces must be custom CloudWatch namespaces (never AWS/...)."
  }
}

variable "package_dir" {
  description = "Absolute directory with one <key>.zip per zip-packaged function."
  type        = string

  validation {
    condition     = startswith(var.package_dir, "/")
    error_message = "package_dir must be absolute."
  }
}

variable "runtime" {
  description = "Runtime of zip-packaged functions."
  type        = string

  validation {
    condition     = can(regex("^python3\\.1[1-3]$", var.runtime))
    error_message = "runtime must be python3.11..python3.13."
  }
}

variable "architecture" {
  description = "Instruction set of every function."
  type        = string

  validation {
    condition     = contains(["x86_64"], var.architecture)
    error_message = "architecture must be x86_64: the SSE image's collector layer is pinned for amd64 only (docker/sse/collector-layer.lock)."
  }
}

variable "sse_image_digest" {
  description = "Digest of the image function's image in its ECR repository (sha256:<64 hex>)."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.sse_image_digest))
    error_message = "sse_image_digest must be sha256:<64 lowercase hex>."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency by function key, overriding the stack map's reserved_concurrency (-1: unreserved; absent: the map's value, else unreserved)."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.reserved_concurrency) : v == -1 || (v >= 0 && v <= 1000)])
    error_message = "reserved_concurrency values must be -1 or 0..1000."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number

  validation {
    condition     = var.log_retention_days >= 1
    error_message = "log_retention_days must be positive."
  }
}

variable "kms_key_arn" {
  description = "The stack's customer managed key (log groups; data services through kms:ViaService)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "table_names" {
  description = "Table name by stack key (table:<key> references)."
  type        = map(string)

  validation {
    condition     = alltrue([for n in values(var.table_names) : can(regex("^[A-Za-z0-9_.-]{3,255}$", n))])
    error_message = "table_names must be DynamoDB table names."
  }
}

variable "table_arns" {
  description = "Table ARN by stack key (IAM)."
  type        = map(string)

  validation {
    condition     = alltrue([for a in values(var.table_arns) : can(regex("^arn:aws[a-z-]*:dynamodb:", a))])
    error_message = "table_arns must be DynamoDB table ARNs."
  }
}

variable "topic_arns" {
  description = "SNS topic ARN by stack key (topic:<key> references, triggers, IAM)."
  type        = map(string)

  validation {
    condition     = alltrue([for a in values(var.topic_arns) : can(regex("^arn:aws[a-z-]*:sns:", a))])
    error_message = "topic_arns must be SNS topic ARNs."
  }
}

variable "queue_urls" {
  description = "SQS queue URL by stack key (queue:<key> references)."
  type        = map(string)

  validation {
    condition     = alltrue([for u in values(var.queue_urls) : startswith(u, "https://")])
    error_message = "queue_urls must be SQS queue URLs."
  }
}

variable "queue_arns" {
  description = "SQS queue ARN by stack key (dead-letter targets, IAM)."
  type        = map(string)

  validation {
    condition     = alltrue([for a in values(var.queue_arns) : can(regex("^arn:aws[a-z-]*:sqs:", a))])
    error_message = "queue_arns must be SQS queue ARNs."
  }
}

variable "secret_names" {
  description = "Secret name by stack key (secret:<key> references)."
  type        = map(string)

  validation {
    condition     = alltrue([for n in values(var.secret_names) : can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", n))])
    error_message = "secret_names must be Secrets Manager names."
  }
}

variable "secret_arns" {
  description = "Secret ARN by stack key (IAM)."
  type        = map(string)

  validation {
    condition     = alltrue([for a in values(var.secret_arns) : can(regex("^arn:aws[a-z-]*:secretsmanager:", a))])
    error_message = "secret_arns must be Secrets Manager ARNs."
  }
}

variable "alias_name" {
  description = "The alias every function gets, pointing at the version this apply published; triggers, the API integration and the Function URL invoke it (stack map: function_alias)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,127}$", var.alias_name)) && !can(regex("^[0-9]+$", var.alias_name))
    error_message = "alias_name must be a Lambda alias name (letters first, not a version number)."
  }
}

variable "cors_allow_origin" {
  description = "Origin allowed by CORS; replaces the map's CORS_ALLOW_ORIGINS literal (the devstack's \"*\") in every function that reads it."
  type        = string

  validation {
    condition     = var.cors_allow_origin == "*" || can(regex("^https?://[a-z0-9.-]+(:[0-9]+)?$", var.cors_allow_origin))
    error_message = "cors_allow_origin must be \"*\" or one origin."
  }
}

variable "alerts_kms_key_arn" {
  description = "The alerting topics' own KMS key (stack map topics marked alerting): a function publishing to one uses it through SNS only."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.alerts_kms_key_arn))
    error_message = "alerts_kms_key_arn must be a KMS key ARN."
  }
}

variable "alerting_topics" {
  description = "Keys of the stack map's alerting topics (on alerts_kms_key_arn, not on the stack key)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for key in var.alerting_topics : contains(keys(var.topic_arns), key)])
    error_message = "alerting_topics must be keys of topic_arns."
  }
}
