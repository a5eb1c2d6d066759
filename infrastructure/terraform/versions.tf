terraform {
  # 1.9+: variable validations may refer to other variables (sampling rate vs environment).
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0, < 6.0.0"
    }
  }

  # Partial configuration: `terraform init -backend-config=environments/<env>.backend.hcl`.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = local.tags
  }
}

# Billing metrics (AWS/Billing EstimatedCharges) exist only in us-east-1.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  default_tags {
    tags = local.tags
  }
}
