variable "name_prefix" {
  description = "Physical name prefix, sentiment-analyzer-<env>; every resource is <name_prefix>-<stack key>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens (3..41 chars)."
  }
}

variable "tables" {
  description = "The stack map's tables: hash/range keys, TTL attribute (or null) and GSIs (each projected ALL)."
  type = map(object({
    hash_key      = object({ name = string, type = string })
    range_key     = object({ name = string, type = string })
    ttl_attribute = optional(string)
    global_secondary_indexes = map(object({
      hash_key  = object({ name = string, type = string })
      range_key = object({ name = string, type = string })
    }))
  }))

  validation {
    condition = alltrue(flatten([for t in values(var.tables) : concat(
      [contains(["S", "N", "B"], t.hash_key.type), contains(["S", "N", "B"], t.range_key.type)],
      [for g in values(t.global_secondary_indexes) : contains(["S", "N", "B"], g.hash_key.type) && contains(["S", "N", "B"], g.range_key.type)]
    )]))
    error_message = "key attribute types must be S, N or B."
  }
}

variable "topics" {
  description = "The stack map's SNS topics: X-Ray tracing mode (Active or PassThrough; the X-Ray resource policy covers the Active ones) and alerting (own KMS key)."
  type        = map(object({ tracing = string, alerting = optional(bool, false) }))

  validation {
    condition     = alltrue([for t in values(var.topics) : contains(["Active", "PassThrough"], t.tracing)])
    error_message = "topic tracing must be Active or PassThrough."
  }
}

variable "queues" {
  description = "The stack map's SQS queues (dead-letter queues of asynchronously invoked functions)."
  type        = map(any)

  validation {
    condition     = alltrue([for k in keys(var.queues) : can(regex("^[a-z][a-z0-9_]{0,40}$", k))])
    error_message = "queue keys must be lowercase identifiers."
  }
}

variable "secrets" {
  description = "The stack map's Secrets Manager secrets (created empty: values are set out of band)."
  type        = map(object({ description = string }))

  validation {
    condition     = alltrue([for s in values(var.secrets) : length(trimspace(s.description)) > 0])
    error_message = "every secret needs a description of its JSON shape."
  }
}

variable "deletion_protection" {
  description = "Deletion protection on every DynamoDB table."
  type        = bool
  nullable    = false
}

variable "dlq_retention_seconds" {
  description = "How long a dead letter stays in its queue (max 14 days)."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_retention_seconds >= 60 && var.dlq_retention_seconds <= 1209600
    error_message = "dlq_retention_seconds must be within 60..1209600."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted secret can still be restored."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or 7..30."
  }
}
