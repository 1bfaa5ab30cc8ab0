"""Reference profiles as MLflow artifacts: logged beside the model at training time, found again
through the model card (``reference_profile``: the run-relative artifact path)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from earthops.errors import DataError, EarthOpsError
from earthops.monitoring.profile import ReferenceProfile
from earthops.registry.inference import LoadedModel
from earthops.registry.tracking import configure

PROFILE_ARTIFACT = "reference_profile.json"


def log_reference_profile(profile: ReferenceProfile, artifact_file: str = PROFILE_ARTIFACT) -> str:
    """Log ``profile`` as a JSON artifact of the active run; return its run-relative path (the
    model card's ``reference_profile``)."""
    if mlflow.active_run() is None:
        raise EarthOpsError("log_reference_profile: expected an active MLflow run")
    mlflow.log_text(profile.to_json(), artifact_file)
    return artifact_file


def _run_id(loaded: LoadedModel) -> str | None:
    """The run that logged ``loaded`` (registry version, ``runs:/``, logged model or local dir)."""
    if loaded.run_id:
        return loaded.run_id
    local = Path(loaded.uri)
    if (local / "MLmodel").is_file():
        return mlflow.models.Model.load(local / "MLmodel").run_id
    configure()
    try:
        return mlflow.models.get_model_info(loaded.uri).run_id
    except mlflow.exceptions.MlflowException:
        return None


def load_reference_profile(loaded: LoadedModel) -> ReferenceProfile:
    """The reference profile of a loaded model (downloaded from the run that logged it).

    A model whose card has none (logged before profiles) is a clear error saying to retrain."""
    path, usecase = loaded.card.reference_profile, loaded.card.usecase
    if not path:
        raise EarthOpsError(
            f"model '{loaded.uri}' has no reference profile in its model card (logged before "
            f"profiles were); retrain it to log one: earthops train {usecase} --register"
        )
    beside = Path(loaded.uri) / path  # a model folder copied together with its profile
    if beside.is_file():
        return ReferenceProfile.load(beside)
    run_id = _run_id(loaded)
    if run_id is None:
        raise EarthOpsError(
            f"model '{loaded.uri}': no MLflow run found to download its reference profile "
            f"'{path}' from; use a registry or runs:/ URI of the tracking store that logged it"
        )
    configure()
    with tempfile.TemporaryDirectory(prefix="earthops-profile-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=tmp
            )
        except (mlflow.exceptions.MlflowException, OSError) as exc:
            raise EarthOpsError(
                f"model '{loaded.uri}': cannot download its reference profile '{path}' from run "
                f"{run_id} ({getattr(exc, 'message', exc)})"
            ) from None
        try:
            return ReferenceProfile.load(local)
        except DataError as exc:
            raise EarthOpsError(f"model '{loaded.uri}': {exc}") from None
