variable "name_prefix" {
  description = "Physical name prefix, <project>-<environment>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens (3..41 chars)."
  }
}

variable "dashboard_function_name" {
  description = "Name of the dashboard Lambda behind /api/v2/{proxy+}."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.dashboard_function_name))
    error_message = "dashboard_function_name must be a Lambda function name."
  }
}

variable "dashboard_invoke_arn" {
  description = "Invoke ARN of the dashboard Lambda's alias (AWS_PROXY integration)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:apigateway:[a-z0-9-]+:lambda:path/.*:function:[A-Za-z0-9_-]+:[A-Za-z][A-Za-z0-9_-]*/invocations$", var.dashboard_invoke_arn))
    error_message = "dashboard_invoke_arn must be the invoke ARN of an alias (function:<name>:<alias>)."
  }
}

variable "sse_function_name" {
  description = "Name of the SSE Lambda exposed through a RESPONSE_STREAM Function URL."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.sse_function_name))
    error_message = "sse_function_name must be a Lambda function name."
  }
}

variable "stage_name" {
  description = "API Gateway stage; CloudFront's origin path, and with the API name the X-Ray sampling service name <api>/<stage>."
  type        = string
  default     = "live"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_]{1,64}$", var.stage_name))
    error_message = "stage_name must be letters, digits or underscores."
  }
}

variable "cors_allow_origin" {
  description = "Origin allowed by CORS (\"*\" or one scheme://host) on OPTIONS, gateway responses and the Function URL."
  type        = string

  validation {
    condition     = var.cors_allow_origin == "*" || can(regex("^https?://[a-z0-9.-]+(:[0-9]+)?$", var.cors_allow_origin))
    error_message = "cors_allow_origin must be \"*\" or one origin."
  }
}

variable "log_retention_days" {
  description = "Retention of the API access log group."
  type        = number

  validation {
    condition     = var.log_retention_days >= 1
    error_message = "log_retention_days must be positive."
  }
}

variable "kms_key_arn" {
  description = "The stack's customer managed key (access log group)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "api_throttling_rate_limit" {
  description = "Stage steady-state requests per second."
  type        = number

  validation {
    condition     = var.api_throttling_rate_limit > 0
    error_message = "api_throttling_rate_limit must be positive."
  }
}

variable "api_throttling_burst_limit" {
  description = "Stage burst limit."
  type        = number

  validation {
    condition     = var.api_throttling_burst_limit > 0
    error_message = "api_throttling_burst_limit must be positive."
  }
}

variable "manage_api_gateway_account" {
  description = "Set the account-level API Gateway CloudWatch Logs role (one environment per account)."
  type        = bool
  nullable    = false
}

variable "price_class" {
  description = "CloudFront price class."
  type        = string

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.price_class)
    error_message = "price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "acm_certificate_arn" {
  description = "ACM certificate (us-east-1) for domain_aliases; null keeps *.cloudfront.net."
  type        = string
  default     = null

  validation {
    condition     = var.acm_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:us-east-1:", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be an ACM certificate in us-east-1."
  }
}

variable "domain_aliases" {
  description = "Custom domain names on the distribution."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.domain_aliases : can(regex("^[a-z0-9.-]+$", d))])
    error_message = "domain_aliases must be lowercase host names."
  }
}

variable "sse_origin_read_timeout" {
  description = "Seconds CloudFront waits between packets from the SSE origin; above the stream's heartbeat interval (15 s)."
  type        = number
  default     = 60

  validation {
    condition     = var.sse_origin_read_timeout >= 20 && var.sse_origin_read_timeout <= 180
    error_message = "sse_origin_read_timeout must be within 20..180 (above the 15 s heartbeat)."
  }
}

variable "function_alias" {
  description = "The alias the API integration, the Function URL and their Lambda permissions use (stack map: function_alias)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9_-]{0,127}$", var.function_alias))
    error_message = "function_alias must be a Lambda alias name."
  }
}

variable "origin_verify_header" {
  description = "Header CloudFront adds to every API request and the API's web ACL requires (stack map: edge.origin_verify_header)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{2,63}$", var.origin_verify_header)) && !startswith(lower(var.origin_verify_header), "x-amz")
    error_message = "origin_verify_header must be a custom header name (CloudFront refuses X-Amz-* custom headers)."
  }
}

variable "user_pool_arn" {
  description = "ARN of the Cognito user pool whose ID tokens the alert routes' COGNITO_USER_POOLS authorizer accepts."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:[0-9]{12}:userpool/[a-z0-9-]+_[A-Za-z0-9]+$", var.user_pool_arn))
    error_message = "user_pool_arn must be a Cognito user pool ARN."
  }
}

variable "write_throttling_rate_limit" {
  description = "Steady-state requests per second the stage accepts on each alert write method (POST, DELETE)."
  type        = number
  default     = 5

  validation {
    condition     = var.write_throttling_rate_limit > 0 && var.write_throttling_rate_limit <= 10000
    error_message = "write_throttling_rate_limit must be within 1..10000."
  }
}

variable "write_throttling_burst_limit" {
  description = "Burst of requests the stage accepts on each alert write method (POST, DELETE)."
  type        = number
  default     = 10

  validation {
    condition     = var.write_throttling_burst_limit > 0 && var.write_throttling_burst_limit <= 5000
    error_message = "write_throttling_burst_limit must be within 1..5000."
  }
}

variable "cognito_web_client_id" {
  description = "Cognito app client the dashboard page signs in with (written to the page's config.json)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9+]{1,128}$", var.cognito_web_client_id))
    error_message = "cognito_web_client_id must be a Cognito app client id."
  }
}
