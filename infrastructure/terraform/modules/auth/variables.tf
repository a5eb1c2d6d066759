variable "name_prefix" {
  description = "Physical name prefix, <project>-<environment>."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix must be lowercase letters, digits and hyphens (3..41 chars)."
  }
}

variable "deletion_protection" {
  description = "Protect the user pool from deletion (the users and their rules' owners live there)."
  type        = bool
  nullable    = false
  default     = true
}

variable "self_sign_up" {
  description = "Let people sign themselves up (true) or only administrators create users (false)."
  type        = bool
  nullable    = false
  default     = false
}

variable "password_minimum_length" {
  description = "Minimum password length of the pool's users."
  type        = number
  default     = 12

  validation {
    condition     = var.password_minimum_length >= 8 && var.password_minimum_length <= 99
    error_message = "password_minimum_length must be within 8..99 (Cognito's range)."
  }
}

variable "id_token_validity_minutes" {
  description = "Lifetime of the ID and access tokens the web client receives, in minutes."
  type        = number
  default     = 60

  validation {
    condition     = var.id_token_validity_minutes >= 5 && var.id_token_validity_minutes <= 1440
    error_message = "id_token_validity_minutes must be within 5..1440 (Cognito's range)."
  }
}

variable "refresh_token_validity_days" {
  description = "Lifetime of the web client's refresh tokens, in days."
  type        = number
  default     = 7

  validation {
    condition     = var.refresh_token_validity_days >= 1 && var.refresh_token_validity_days <= 3650
    error_message = "refresh_token_validity_days must be within 1..3650."
  }
}
