output "user_pool_id" {
  description = "ID of the dashboard's Cognito user pool."
  value       = aws_cognito_user_pool.this.id
}

output "user_pool_arn" {
  description = "ARN of the user pool (the API's COGNITO_USER_POOLS authorizer names it)."
  value       = aws_cognito_user_pool.this.arn
}

output "web_client_id" {
  description = "App client the dashboard page signs in with (InitiateAuth, USER_PASSWORD_AUTH)."
  value       = aws_cognito_user_pool_client.web.id
}

output "issuer" {
  description = "The ID tokens' `iss`; the SSE function fetches `<issuer>/.well-known/jwks.json`."
  value       = "https://cognito-idp.${data.aws_region.current.name}.amazonaws.com/${aws_cognito_user_pool.this.id}"
}
