terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 3.100, < 5.0"
    }
  }
}

# Credentials come from the environment (az login, OIDC federated identity in CI).
provider "azurerm" {
  features {}
}
