"""The one settings object (env prefix ``EARTHOPS_``); nothing else reads the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration. Every path and URI used by EarthOps comes from here."""

    model_config = SettingsConfigDict(env_prefix="EARTHOPS_", extra="ignore")

    home: Path = Field(
        default=Path(".earthops"), description="Working home: stores, caches, outputs."
    )
    data_dir: Path | None = Field(
        default=None, description="Local mirror of the public datasets (read first)."
    )
    cache_dir: Path | None = Field(default=None, description="Download cache; default <home>/data.")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<home>/mlflow.db."
    )
    registry_uri: str | None = Field(default=None, description="MLflow registry URI.")
    artifact_root: Path | None = Field(default=None, description="Default <home>/mlartifacts.")
    approved_models: Path | None = Field(
        default=None,
        description="Review-gated approved-models list; default <home>/approved_models.txt.",
    )
    gates: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per-use-case gate overrides, JSON: {usecase: {metric: minimum}} (merged over the use case's gate).",
    )
    max_regression: float = Field(
        default=0.02,
        description="Largest primary-metric drop vs the champion a promotion may bring.",
    )
    feature_repo: Path | None = Field(
        default=None, description="Feast repo dir; default <home>/feature_repo."
    )
    online_store: str = Field(
        default="sqlite", description="'sqlite' or a redis connection string."
    )
    online_ttl_hours: float = 8.0
    optuna_storage: str | None = Field(
        default=None, description="Default sqlite:///<home>/optuna.db."
    )
    dask_scheduler: str | None = Field(
        default=None, description="dask.distributed scheduler address; None = threaded."
    )
    log_level: str = "INFO"
    log_json: bool = False
    seed: int = 42
    reef_grid: Path | None = Field(
        default=None,
        description="SST/DHW NetCDF cube for the reef ViT chip branch (off when unset).",
    )

    # ---- serving (``earthops serve``) ------------------------------------------
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the server's admin endpoints; unset = admin disabled (403).",
    )
    serve_usecases: list[str] = Field(
        default_factory=list,
        description="Use cases `earthops serve` serves (JSON list); empty = every use case.",
    )
    serve_poll_seconds: float = Field(
        default=10.0, gt=0, description="How often the server re-reads the registry aliases."
    )
    serve_max_body_bytes: int = Field(
        default=1_000_000, gt=0, description="Largest request body the server accepts (413)."
    )
    serve_max_records: int = Field(
        default=1000, gt=0, description="Most records in one predict request (422 above)."
    )
    batch_max_size: int = Field(
        default=64, ge=1, description="Micro-batching: most rows in one model call."
    )
    batch_max_wait_ms: float = Field(
        default=2.0, ge=0, description="Micro-batching: most latency added waiting for a batch."
    )
    canary_weight: float = Field(
        default=0.1, ge=0, le=1, description="Challenger traffic share when one is registered."
    )
    canary_shadow: bool = Field(
        default=False,
        description="Shadow mode: the challenger scores every request, the champion answers.",
    )
    canary_window_seconds: float = Field(
        default=1800.0, gt=0, description="Canary observation window before a verdict."
    )
    canary_min_requests: int = Field(
        default=200, ge=1, description="Compared requests the canary needs before any verdict."
    )
    canary_budget: float = Field(
        default=0.01,
        ge=0,
        description="Largest relative degradation a promoted challenger may bring.",
    )
    prediction_log_url: str | None = Field(
        default=None,
        description="Prediction log: a postgresql:// URL; default SQLite (WAL) <home>/predictions.db.",
    )
    prediction_log_flush_seconds: float = Field(
        default=0.2, gt=0, le=1.0, description="Prediction log: longest a row waits in memory."
    )

    # ---- dashboard (``earthops dashboard``) ------------------------------------
    dashboard_refresh_seconds: float = Field(
        default=30.0, ge=1, description="How often the dashboard's pages re-read their sources."
    )
    server_url: str | None = Field(
        default=None,
        description="Base URL of a running `earthops serve` (the dashboard reads /v1/models).",
    )

    # ---- derived locations -------------------------------------------------
    @property
    def home_dir(self) -> Path:
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def download_cache(self) -> Path:
        return (self.cache_dir or self.home_dir / "data").expanduser().resolve()

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return (self.artifact_root or self.home_dir / "mlartifacts").expanduser().resolve()

    @property
    def approved_models_path(self) -> Path:
        return (
            (self.approved_models or self.home_dir / "approved_models.txt").expanduser().resolve()
        )

    @property
    def feature_repo_dir(self) -> Path:
        return (self.feature_repo or self.home_dir / "feature_repo").expanduser().resolve()

    @property
    def optuna_storage_url(self) -> str:
        return self.optuna_storage or f"sqlite:///{self.home_dir / 'optuna.db'}"

    @property
    def prediction_log(self) -> str:
        return self.prediction_log_url or f"sqlite:///{self.home_dir / 'predictions.db'}"

    @property
    def outputs_dir(self) -> Path:
        path = self.home_dir / "outputs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def export_service_env(self) -> None:
        """Settings that third-party libraries read from the environment (Prefect, MLflow)."""
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        # read by OpenMP when LightGBM/XGBoost first load (after this, in the CLI)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("PREFECT_HOME", str(self.home_dir / "prefect"))
        os.environ.setdefault("MLFLOW_TRACKING_URI", self.mlflow_tracking_uri)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
