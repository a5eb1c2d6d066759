variable "environment" {
  description = "Environment name (short names of X-Ray rules and groups, which allow 32 characters)."
  type        = string

  validation {
    condition     = contains(["dev", "preprod", "prod"], var.environment)
    error_message = "environment must be one of dev, preprod, prod."
  }
}

variable "name_prefix" {
  description = "Physical name prefix, <project>-<environment>; alarm names are <name_prefix>-<alarm key>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens (3..41 chars)."
  }
}

variable "functions" {
  description = "The stack map's functions (timeouts; an optional duration_alarm override with its reason)."
  type = map(object({
    timeout_s         = number
    trigger           = object({ type = string })
    dead_letter_queue = optional(string)
    duration_alarm = optional(object({
      statistic    = string
      threshold_ms = number
      reason       = string
    }))
  }))

  validation {
    condition = alltrue([for f in values(var.functions) : f.duration_alarm == null ? true : (
      f.duration_alarm.threshold_ms >= f.timeout_s * 800 && f.duration_alarm.threshold_ms < f.timeout_s * 1000 && length(f.duration_alarm.reason) > 20
    )])
    error_message = "a duration_alarm override must sit between 80 % and 100 % of the timeout and give its reason."
  }
}

variable "function_names" {
  description = "Physical function name by stack key (the FunctionName dimension of every alarm on a function)."
  type        = map(string)

  validation {
    condition     = alltrue([for n in values(var.function_names) : can(regex("^[A-Za-z0-9_-]{1,64}$", n))])
    error_message = "function_names must be Lambda function names."
  }
}

variable "log_group_names" {
  description = "Each function's CloudWatch log group by stack key (the out-of-memory metric filter reads the SSE function's)."
  type        = map(string)

  validation {
    condition     = alltrue([for g in values(var.log_group_names) : startswith(g, "/aws/lambda/")])
    error_message = "log_group_names must be Lambda log groups (/aws/lambda/<function name>)."
  }
}

variable "metric_namespaces" {
  description = "CloudWatch namespaces of the application metrics by stack key (app, canary)."
  type        = map(string)

  validation {
    condition     = contains(keys(var.metric_namespaces), "app") && contains(keys(var.metric_namespaces), "canary")
    error_message = "metric_namespaces must name app and canary."
  }
}

variable "alarm_topic_arn" {
  description = "SNS topic every alarm notifies (the stack map's alarms topic)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sns:", var.alarm_topic_arn))
    error_message = "alarm_topic_arn must be an SNS topic ARN."
  }
}

variable "canary_alert_topic_arn" {
  description = "The canary's out-of-band topic (subscribed by alarm_email_endpoints too)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sns:", var.canary_alert_topic_arn))
    error_message = "canary_alert_topic_arn must be an SNS topic ARN."
  }
}

variable "queue_names" {
  description = "Dead-letter queue names by stack key (a message there is an alarm)."
  type        = map(string)

  validation {
    condition     = alltrue([for n in values(var.queue_names) : can(regex("^[A-Za-z0-9_-]{1,80}$", n))])
    error_message = "queue_names must be SQS queue names."
  }
}

variable "api_name" {
  description = "REST API name (sampling service name <api>/<stage>, API alarms)."
  type        = string

  validation {
    condition     = length(var.api_name) > 0 && length(var.api_name) <= 1024
    error_message = "api_name must not be empty."
  }
}

variable "api_stage_name" {
  description = "REST API stage name."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9_]{1,64}$", var.api_stage_name))
    error_message = "api_stage_name must be letters, digits or underscores."
  }
}

variable "sampling_rate" {
  description = "X-Ray fixed rate (1.0 in dev and preprod, FR-034)."
  type        = number

  validation {
    condition     = var.sampling_rate >= 0 && var.sampling_rate <= 1
    error_message = "sampling_rate must be within 0..1."
  }

  validation {
    condition     = var.environment == "prod" || var.sampling_rate == 1
    error_message = "dev and preprod sample 100 %."
  }
}

variable "sampling_reservoir" {
  description = "X-Ray reservoir (traces per second before the fixed rate)."
  type        = number

  validation {
    condition     = var.sampling_reservoir >= 1
    error_message = "sampling_reservoir must be at least 1."
  }
}

variable "alarm_email_endpoints" {
  description = "E-mail addresses subscribed to the alarm, billing and canary alert topics."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_email_endpoints : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_email_endpoints must be e-mail addresses."
  }
}

variable "create_billing_alarms" {
  description = "Create the X-Ray cost alarms (once per account)."
  type        = bool
  nullable    = false
}

variable "billing_thresholds_usd" {
  description = "X-Ray monthly estimated-charge thresholds in USD."
  type        = list(number)

  validation {
    condition     = alltrue([for t in var.billing_thresholds_usd : t > 0])
    error_message = "billing thresholds must be positive."
  }
}

variable "duration_alarm_ratio" {
  description = "Duration alarms fire at this share of each function's timeout (FR-041/FR-061: 80..90 %)."
  type        = number
  default     = 0.8

  validation {
    condition     = var.duration_alarm_ratio >= 0.8 && var.duration_alarm_ratio <= 0.9
    error_message = "duration_alarm_ratio must be within 0.8..0.9."
  }
}

variable "alarm_period_s" {
  description = "Period of the function and error-count alarms."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_period_s >= 60 && var.alarm_period_s % 60 == 0
    error_message = "alarm_period_s must be a multiple of 60."
  }
}

variable "cloudfront_distribution_id" {
  description = "The distribution whose 5xx rate is alarmed (us-east-1) and graphed."
  type        = string

  validation {
    condition     = can(regex("^[A-Z0-9]{1,32}$", var.cloudfront_distribution_id))
    error_message = "cloudfront_distribution_id must be a CloudFront distribution id."
  }
}

variable "dlq_max_age_s" {
  description = "Age of the oldest dead letter that pages again (the queues keep letters 14 days)."
  type        = number
  default     = 86400

  validation {
    condition     = var.dlq_max_age_s >= 3600 && var.dlq_max_age_s < 1209600
    error_message = "dlq_max_age_s must be at least an hour and under the 14-day retention."
  }
}
