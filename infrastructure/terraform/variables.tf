variable "environment" {
  description = "Deployment environment; part of every physical name (sentiment-analyzer-<environment>-<key>)."
  type        = string

  validation {
    condition     = contains(["dev", "preprod", "prod"], var.environment)
    error_message = "environment must be one of dev, preprod, prod."
  }
}

variable "aws_region" {
  description = "Region of the stack (billing alarms always go to us-east-1 through the aws.us_east_1 provider)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like eu-west-1."
  }
}

variable "lambda_package_dir" {
  description = "Directory holding one <function key>.zip per zip-packaged function (built by infrastructure/scripts/package_lambdas.py from src/); relative to this directory unless absolute."
  type        = string
  default     = "../../build/lambda"

  validation {
    condition     = length(trimspace(var.lambda_package_dir)) > 0
    error_message = "lambda_package_dir must not be empty."
  }
}

variable "sse_image_digest" {
  description = "Digest of the SSE image pushed by `make deploy-sse` (sha256:<64 hex>); the function runs <ECR repo>@<digest>, never a tag."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.sse_image_digest))
    error_message = "sse_image_digest must be sha256:<64 lowercase hex>."
  }
}

variable "lambda_architecture" {
  description = "Instruction set of every function; the zips' wheels and the SSE image must be built for it. Only x86_64: the SSE image embeds the ADOT collector layer pinned in docker/sse/collector-layer.lock, which is the amd64 build; arm64 needs an arm64 pin (layer ARN and SHA-256) first."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64: docker/sse/collector-layer.lock pins the amd64 collector layer only (pin an arm64 layer before allowing arm64)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function key, overriding the stack map's reserved_concurrency; -1 runs the function unreserved, a key left out keeps the map's value (else unreserved)."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.reserved_concurrency) : v == -1 || (v >= 0 && v <= 1000)])
    error_message = "reserved_concurrency values must be -1 (unreserved) or 0..1000."
  }
}

variable "log_retention_days" {
  description = "Retention of every log group (Lambda, API Gateway access logs)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts."
  }
}

variable "xray_sampling_rate" {
  description = "X-Ray sampling fixed rate beyond the reservoir. Must be 1.0 (100 %) outside prod (FR-034); prod's rate is a cost decision."
  type        = number

  validation {
    condition     = var.xray_sampling_rate >= 0 && var.xray_sampling_rate <= 1
    error_message = "xray_sampling_rate must be within 0..1."
  }

  validation {
    condition     = var.environment == "prod" || var.xray_sampling_rate == 1
    error_message = "dev and preprod sample 100 % (xray_sampling_rate = 1.0)."
  }
}

variable "xray_sampling_reservoir" {
  description = "Traces per second sampled before the fixed rate applies (reservoir)."
  type        = number
  default     = 1

  validation {
    condition     = var.xray_sampling_reservoir >= 1 && floor(var.xray_sampling_reservoir) == var.xray_sampling_reservoir
    error_message = "xray_sampling_reservoir must be a whole number >= 1."
  }
}

variable "alarm_email_endpoints" {
  description = "Addresses subscribed to the alarms, billing and canary alert topics (each must confirm)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_email_endpoints : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_email_endpoints must be e-mail addresses."
  }
}

variable "create_billing_alarms" {
  description = "Create the X-Ray cost alarms ($10/$25/$50). Billing is per account: enable it in one environment per account."
  type        = bool
  nullable    = false
  default     = true
}

variable "xray_billing_thresholds_usd" {
  description = "Monthly X-Ray estimated-charge thresholds in USD (FR-038, SC-016)."
  type        = list(number)
  default     = [10, 25, 50]

  validation {
    condition     = length(var.xray_billing_thresholds_usd) > 0 && alltrue([for t in var.xray_billing_thresholds_usd : t > 0])
    error_message = "xray_billing_thresholds_usd must be a non-empty list of positive amounts."
  }
}

variable "dynamodb_deletion_protection" {
  description = "Deletion protection on every table (on in prod)."
  type        = bool
  nullable    = false
  default     = true
}

variable "api_throttling_rate_limit" {
  description = "Steady-state requests per second the API stage accepts."
  type        = number
  default     = 50

  validation {
    condition     = var.api_throttling_rate_limit > 0 && var.api_throttling_rate_limit <= 10000
    error_message = "api_throttling_rate_limit must be within 1..10000."
  }
}

variable "api_throttling_burst_limit" {
  description = "Burst of requests the API stage accepts."
  type        = number
  default     = 100

  validation {
    condition     = var.api_throttling_burst_limit > 0 && var.api_throttling_burst_limit <= 5000
    error_message = "api_throttling_burst_limit must be within 1..5000."
  }
}

variable "cors_allow_origin" {
  description = "Origin allowed by CORS on the API Gateway OPTIONS/gateway responses and the SSE Function URL (\"*\" or one scheme://host)."
  type        = string
  default     = "*"

  validation {
    condition     = var.cors_allow_origin == "*" || can(regex("^https?://[a-z0-9.-]+(:[0-9]+)?$", var.cors_allow_origin))
    error_message = "cors_allow_origin must be \"*\" or one origin such as https://app.example.com."
  }
}

variable "cloudfront_price_class" {
  description = "CloudFront price class (edge locations paid for)."
  type        = string
  default     = "PriceClass_100"

  validation {
    condition     = contains(["PriceClass_100", "PriceClass_200", "PriceClass_All"], var.cloudfront_price_class)
    error_message = "cloudfront_price_class must be PriceClass_100, PriceClass_200 or PriceClass_All."
  }
}

variable "acm_certificate_arn" {
  description = "ACM certificate (us-east-1) for a custom domain on CloudFront; null keeps the *.cloudfront.net certificate."
  type        = string
  default     = null

  validation {
    condition     = var.acm_certificate_arn == null || can(regex("^arn:aws:acm:us-east-1:[0-9]{12}:certificate/", var.acm_certificate_arn))
    error_message = "acm_certificate_arn must be an ACM certificate ARN in us-east-1."
  }
}

variable "domain_aliases" {
  description = "Custom domain names on CloudFront (need acm_certificate_arn)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for d in var.domain_aliases : can(regex("^[a-z0-9.-]+$", d))])
    error_message = "domain_aliases must be lowercase host names."
  }

  validation {
    condition     = length(var.domain_aliases) == 0 || var.acm_certificate_arn != null
    error_message = "domain_aliases need acm_certificate_arn."
  }
}

variable "manage_api_gateway_account" {
  description = "Set the account-level API Gateway CloudWatch Logs role (a singleton per account and region: enable it in one environment of an account)."
  type        = bool
  nullable    = false
  default     = true
}

variable "cognito_deletion_protection" {
  description = "Protect the dashboard's Cognito user pool from deletion (turn off only for throwaway environments)."
  type        = bool
  nullable    = false
  default     = true
}
