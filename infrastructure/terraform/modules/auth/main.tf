# The dashboard's users: alert rules belong to one of them (issue 21). The API's COGNITO_USER_POOLS
# authorizer (modules/edge) checks their ID tokens; the dashboard reads `sub`, `email` and
# `email_verified` from the claims, so the web client must be allowed to read those two attributes.
# https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-enable-cognito-user-pool.html
data "aws_region" "current" {}

resource "aws_cognito_user_pool" "this" {
  name                     = "${var.name_prefix}-users"
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"] # a rule only ever mails a verified address
  deletion_protection      = var.deletion_protection ? "ACTIVE" : "INACTIVE"
  mfa_configuration        = "OPTIONAL"

  software_token_mfa_configuration {
    enabled = true
  }

  password_policy {
    minimum_length                   = var.password_minimum_length
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = false
    temporary_password_validity_days = 3
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }

  admin_create_user_config {
    allow_admin_create_user_only = !var.self_sign_up
  }

  # Cognito's threat protection (compromised credentials, adaptive authentication).
  user_pool_add_ons {
    advanced_security_mode = "ENFORCED"
  }
}

# The dashboard page signs in with USER_PASSWORD_AUTH (InitiateAuth from the browser: a public
# client, no secret). SRP stays allowed for clients that prefer it.
resource "aws_cognito_user_pool_client" "web" {
  name                          = "${var.name_prefix}-web"
  user_pool_id                  = aws_cognito_user_pool.this.id
  generate_secret               = false
  explicit_auth_flows           = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
  read_attributes               = ["email", "email_verified"]
  write_attributes              = ["email"]
  prevent_user_existence_errors = "ENABLED"
  enable_token_revocation       = true
  id_token_validity             = var.id_token_validity_minutes
  access_token_validity         = var.id_token_validity_minutes
  refresh_token_validity        = var.refresh_token_validity_days

  token_validity_units {
    id_token      = "minutes"
    access_token  = "minutes"
    refresh_token = "days"
  }
}
