output "resource_group" {
  description = "Resource group of the EarthOps resources."
  value       = azurerm_resource_group.earthops.name
}

output "artifact_store" {
  description = "MLflow artefact root (--artifacts-destination)."
  value       = "wasbs://${azurerm_storage_container.mlflow.name}@${azurerm_storage_account.artifacts.name}.blob.core.windows.net/"
}

output "postgres_fqdn" {
  description = "PostgreSQL host of the MLflow backend store."
  value       = azurerm_postgresql_flexible_server.mlflow.fqdn
}

output "server_url" {
  description = "URL of `earthops serve`."
  value       = "http://${azurerm_container_group.server.fqdn}:8080"
}
