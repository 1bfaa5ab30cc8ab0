# EarthOps on Azure: Storage (MLflow artefacts), PostgreSQL flexible server (MLflow backend
# store, Optuna, prediction log) and the model server on Azure Container Instances.
# Secrets arrive as sensitive variables (TF_VAR_…) and go into secure environment variables.

locals {
  prefix = "${var.name}-${var.environment}"
  tags = {
    project     = var.name
    environment = var.environment
    managed-by  = "terraform"
  }
  settings = merge({
    EARTHOPS_HOME         = "/var/lib/earthops"
    EARTHOPS_LOG_JSON     = "true"
    EARTHOPS_TRACKING_URI = var.mlflow_tracking_uri
  }, var.extra_settings)
}

resource "azurerm_resource_group" "earthops" {
  name     = "rg-${local.prefix}"
  location = var.location
  tags     = local.tags
}

# ---------------------------------------------------------------- artefact store (Storage)
resource "azurerm_storage_account" "artifacts" {
  name                            = substr(replace("st${var.name}${var.environment}", "-", ""), 0, 24)
  resource_group_name             = azurerm_resource_group.earthops.name
  location                        = azurerm_resource_group.earthops.location
  account_tier                    = "Standard"
  account_replication_type        = var.environment == "production" ? "ZRS" : "LRS"
  min_tls_version                 = "TLS1_2"
  allow_nested_items_to_be_public = false
  tags                            = local.tags
  blob_properties {
    versioning_enabled = true
  }
}

resource "azurerm_storage_container" "mlflow" {
  name                  = "mlflow"
  storage_account_name  = azurerm_storage_account.artifacts.name
  container_access_type = "private"
}

# ---------------------------------------------------------------- PostgreSQL
resource "azurerm_postgresql_flexible_server" "mlflow" {
  name                          = "psql-${local.prefix}"
  resource_group_name           = azurerm_resource_group.earthops.name
  location                      = azurerm_resource_group.earthops.location
  version                       = "16"
  sku_name                      = var.postgres_sku
  storage_mb                    = var.postgres_storage_mb
  administrator_login           = "earthops"
  administrator_password        = var.postgres_admin_password
  backup_retention_days         = var.environment == "production" ? 14 : 7
  public_network_access_enabled = true
  tags                          = local.tags
  lifecycle {
    ignore_changes = [zone]
  }
}

resource "azurerm_postgresql_flexible_server_database" "mlflow" {
  for_each  = toset(["mlflow", "optuna", "predictions"])
  name      = each.value
  server_id = azurerm_postgresql_flexible_server.mlflow.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

# Azure services only (0.0.0.0 rule); use a VNet-integrated server for private access.
resource "azurerm_postgresql_flexible_server_firewall_rule" "azure" {
  name             = "allow-azure-services"
  server_id        = azurerm_postgresql_flexible_server.mlflow.id
  start_ip_address = "0.0.0.0"
  end_ip_address   = "0.0.0.0"
}

# ---------------------------------------------------------------- server (Container Instances)
resource "azurerm_container_group" "server" {
  name                = "ci-${local.prefix}-server"
  resource_group_name = azurerm_resource_group.earthops.name
  location            = azurerm_resource_group.earthops.location
  os_type             = "Linux"
  ip_address_type     = "Public"
  dns_name_label      = "${local.prefix}-server"
  restart_policy      = "Always"
  tags                = local.tags

  identity {
    type = "SystemAssigned"
  }

  container {
    name     = "server"
    image    = var.image
    cpu      = var.server_cpu
    memory   = var.server_memory_gb
    commands = ["earthops", "serve", "--host", "0.0.0.0", "--port", "8080"]

    ports {
      port     = 8080
      protocol = "TCP"
    }

    environment_variables = local.settings
    secure_environment_variables = var.admin_token == "" ? {} : {
      EARTHOPS_ADMIN_TOKEN = var.admin_token
    }

    readiness_probe {
      http_get {
        path   = "/readyz"
        port   = 8080
        scheme = "Http"
      }
      period_seconds    = 10
      failure_threshold = 3
    }

    liveness_probe {
      http_get {
        path   = "/healthz"
        port   = 8080
        scheme = "Http"
      }
      initial_delay_seconds = 60
      period_seconds        = 20
      failure_threshold     = 3
    }
  }
}

# The server's identity may read and write the MLflow artefacts.
resource "azurerm_role_assignment" "server_artifacts" {
  scope                = azurerm_storage_account.artifacts.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_container_group.server.identity[0].principal_id
}
