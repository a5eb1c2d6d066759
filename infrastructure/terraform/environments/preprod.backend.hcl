# terraform init -backend-config=environments/preprod.backend.hcl
# One state per environment; the bucket (versioned, encrypted) and the lock table are created once
# per account outside this stack (see ../README.md, "Remote state").
bucket         = "sentiment-analyzer-tfstate-preprod"
key            = "sentiment-analyzer/preprod/terraform.tfstate"
region         = "eu-west-1"
dynamodb_table = "sentiment-analyzer-tflock"
encrypt        = true
