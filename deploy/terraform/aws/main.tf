# EarthOps on AWS: S3 artefact store for MLflow, ECR for the image, RDS PostgreSQL (MLflow
# backend store, Optuna, prediction log) and the model server on ECS Fargate.
# The RDS master password is managed by RDS in Secrets Manager; nothing secret is in here.
# Run the MLflow server on its own (backend store: output db_endpoint, artefacts:
# s3://<artifact_bucket>/mlflow) and give its URL as var.mlflow_tracking_uri.

locals {
  prefix = "${var.name}-${var.environment}"
  tags = {
    project     = var.name
    environment = var.environment
    managed-by  = "terraform"
  }
  image = "${aws_ecr_repository.earthops.repository_url}:${var.image_tag}"
  settings = merge({
    EARTHOPS_HOME         = "/var/lib/earthops"
    EARTHOPS_LOG_JSON     = "true"
    EARTHOPS_TRACKING_URI = var.mlflow_tracking_uri
    AWS_DEFAULT_REGION    = var.region
  }, var.extra_settings)
}

data "aws_caller_identity" "current" {}

# ---------------------------------------------------------------- artefact store (S3)
resource "aws_s3_bucket" "artifacts" {
  bucket = "${local.prefix}-mlflow-artifacts-${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ---------------------------------------------------------------- image registry (ECR)
resource "aws_ecr_repository" "earthops" {
  name                 = local.prefix
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
}

# ---------------------------------------------------------------- PostgreSQL (RDS)
resource "aws_db_subnet_group" "mlflow" {
  name       = "${local.prefix}-mlflow"
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "db" {
  name        = "${local.prefix}-db"
  description = "PostgreSQL from the EarthOps tasks only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_server" {
  security_group_id            = aws_security_group.db.id
  referenced_security_group_id = aws_security_group.server.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_instance" "mlflow" {
  identifier                  = "${local.prefix}-mlflow"
  engine                      = "postgres"
  engine_version              = "16"
  instance_class              = var.db_instance_class
  allocated_storage           = var.db_allocated_storage_gb
  storage_encrypted           = true
  db_name                     = "mlflow"
  username                    = "earthops"
  manage_master_user_password = true
  db_subnet_group_name        = aws_db_subnet_group.mlflow.name
  vpc_security_group_ids      = [aws_security_group.db.id]
  multi_az                    = var.environment == "production"
  backup_retention_period     = var.environment == "production" ? 14 : 1
  deletion_protection         = var.environment == "production"
  skip_final_snapshot         = var.environment != "production"
  final_snapshot_identifier   = "${local.prefix}-mlflow-final"
}

# ---------------------------------------------------------------- server (ECS Fargate)
resource "aws_ecs_cluster" "earthops" {
  name = local.prefix
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "server" {
  name              = "/ecs/${local.prefix}/server"
  retention_in_days = 30
}

data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.prefix}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  count = var.admin_token_secret_arn == "" ? 0 : 1
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.admin_token_secret_arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count  = var.admin_token_secret_arn == "" ? 0 : 1
  name   = "secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

resource "aws_iam_role" "task" {
  name               = "${local.prefix}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

# MLflow clients read and write artefacts straight from S3 unless the MLflow server proxies them.
data "aws_iam_policy_document" "task_artifacts" {
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.artifacts.arn]
  }
  statement {
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
}

resource "aws_iam_role_policy" "task_artifacts" {
  name   = "mlflow-artifacts"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_artifacts.json
}

resource "aws_security_group" "server" {
  name        = "${local.prefix}-server"
  description = "EarthOps model server"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "server_http" {
  for_each          = toset(var.allowed_cidr_blocks)
  security_group_id = aws_security_group.server.id
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 8080
  to_port           = 8080
}

resource "aws_vpc_security_group_egress_rule" "server_all" {
  security_group_id = aws_security_group.server.id
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_ecs_task_definition" "server" {
  family                   = "${local.prefix}-server"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.server_cpu
  memory                   = var.server_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  container_definitions = jsonencode([{
    name      = "server"
    image     = local.image
    essential = true
    command   = ["serve", "--host", "0.0.0.0", "--port", "8080"]
    user      = "10001:10001"
    portMappings = [{
      containerPort = 8080
      protocol      = "tcp"
    }]
    environment = [for k, v in local.settings : { name = k, value = v }]
    secrets = var.admin_token_secret_arn == "" ? [] : [
      { name = "EARTHOPS_ADMIN_TOKEN", valueFrom = var.admin_token_secret_arn },
    ]
    healthCheck = {
      command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.server.name
        awslogs-region        = var.region
        awslogs-stream-prefix = "server"
      }
    }
  }])
}

resource "aws_ecs_service" "server" {
  name                               = "${local.prefix}-server"
  cluster                            = aws_ecs_cluster.earthops.id
  task_definition                    = aws_ecs_task_definition.server.arn
  desired_count                      = var.server_count
  launch_type                        = "FARGATE"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.server.id]
    assign_public_ip = false
  }
}
