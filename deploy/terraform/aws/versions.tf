terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40, < 7.0"
    }
  }
}

# Credentials come from the environment (AWS_PROFILE, OIDC role in CI); none are stored here.
provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}
