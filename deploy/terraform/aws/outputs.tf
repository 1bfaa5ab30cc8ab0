output "artifact_bucket" {
  description = "S3 bucket of the MLflow artefacts (--artifacts-destination s3://BUCKET/mlflow)."
  value       = aws_s3_bucket.artifacts.bucket
}

output "ecr_repository_url" {
  description = "Push the EarthOps image here."
  value       = aws_ecr_repository.earthops.repository_url
}

output "db_endpoint" {
  description = "RDS PostgreSQL host:port of the MLflow backend store."
  value       = aws_db_instance.mlflow.endpoint
}

output "db_credentials_secret_arn" {
  description = "Secrets Manager ARN of the RDS-managed master credentials."
  value       = aws_db_instance.mlflow.master_user_secret[0].secret_arn
}

output "ecs_cluster" {
  description = "ECS cluster of the server."
  value       = aws_ecs_cluster.earthops.name
}

output "server_service" {
  description = "ECS service running `earthops serve`."
  value       = aws_ecs_service.server.name
}
