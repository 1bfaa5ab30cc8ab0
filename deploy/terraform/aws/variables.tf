variable "name" {
  description = "Name prefix of every resource."
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

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "VPC the database and the service run in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two AZs) for RDS and the Fargate tasks."
  type        = list(string)
}

variable "allowed_cidr_blocks" {
  description = "CIDR blocks that may reach the server port (load balancer / VPN)."
  type        = list(string)
  default     = []
}

variable "image_tag" {
  description = "Tag of the EarthOps image in the ECR repository."
  type        = string
  default     = "0.1.0"
}

variable "server_cpu" {
  description = "Fargate CPU units of one server task."
  type        = number
  default     = 1024
}

variable "server_memory" {
  description = "Fargate memory (MiB) of one server task."
  type        = number
  default     = 4096
}

variable "server_count" {
  description = "Server tasks."
  type        = number
  default     = 2
}

variable "db_instance_class" {
  description = "RDS instance class of the MLflow PostgreSQL."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "RDS storage (GiB)."
  type        = number
  default     = 50
}

variable "mlflow_tracking_uri" {
  description = "URL of the MLflow tracking server the EarthOps server reads the registry from."
  type        = string
}

variable "admin_token_secret_arn" {
  description = "Secrets Manager ARN holding EARTHOPS_ADMIN_TOKEN (created out of band; empty: admin disabled)."
  type        = string
  default     = ""
}

variable "extra_settings" {
  description = "More EARTHOPS_* settings of the server (non-secret)."
  type        = map(string)
  default     = {}
}
