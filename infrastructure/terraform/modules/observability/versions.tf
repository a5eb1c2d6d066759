terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 6.0.0"
      # Billing metrics (AWS/Billing) are published in us-east-1 only.
      configuration_aliases = [aws.us_east_1]
    }
  }
}
