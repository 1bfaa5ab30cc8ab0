variable "name" {
  description = "Name prefix of every resource (lower-case letters and digits)."
  type        = string
  default     = "earthops"
}

variable "environment" {
  description = "Deployment environment (staging, production)."
  type        = string
  default     = "staging"
  validation {
    condition     = contains(["staging", "production"], var.environment)
    error_message = "environment must be staging or production."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
  default     = "westeurope"
}

variable "image" {
  description = "EarthOps image (registry/repository:tag)."
  type        = string
  default     = "earthops/earthops:0.1.0"
}

variable "postgres_sku" {
  description = "SKU of the PostgreSQL flexible server."
  type        = string
  default     = "B_Standard_B2s"
}

variable "postgres_storage_mb" {
  description = "PostgreSQL storage (MB)."
  type        = number
  default     = 32768
}

variable "postgres_admin_password" {
  description = "PostgreSQL administrator password (TF_VAR_postgres_admin_password; never in a file)."
  type        = string
  sensitive   = true
}

variable "mlflow_tracking_uri" {
  description = "URL of the MLflow tracking server the EarthOps server reads the registry from."
  type        = string
}

variable "admin_token" {
  description = "EARTHOPS_ADMIN_TOKEN of the server (TF_VAR_admin_token; empty: admin disabled)."
  type        = string
  default     = ""
  sensitive   = true
}

variable "server_cpu" {
  description = "vCPUs of the server container."
  type        = number
  default     = 1
}

variable "server_memory_gb" {
  description = "Memory (GB) of the server container."
  type        = number
  default     = 4
}

variable "extra_settings" {
  description = "More EARTHOPS_* settings of the server (non-secret)."
  type        = map(string)
  default     = {}
}
