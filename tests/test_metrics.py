"""The shared classification metrics (``earthops.models.metrics``)."""

from __future__ import annotations

import numpy as np
import pytest

from earthops.models.metrics import classification_metrics, headline_figures, holdout_fields


def test_metrics_cover_present_classes_and_name_them() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    metrics = classification_metrics(
        y, pred, [0, 1, 2, 5], names=["water", "forest", "crop"] + [""] * 3
    )
    assert set(metrics["per_class"]) == {"water", "forest", "crop"}  # class 5 is absent from y
    assert metrics["per_class"]["forest"] == {
        "precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2,
    }  # fmt: skip
    assert metrics["overall_accuracy"] == pytest.approx(4 / 6)
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # not diluted by 5
    assert metrics["n_samples"] == 6
    assert headline_figures(metrics) == {
        "overall_accuracy": 0.6667, "macro_f1": 0.6556, "kappa": round(metrics["kappa"], 4),
    }  # fmt: skip
    labelled = classification_metrics(np.array(["a", "b"]), np.array(["a", "a"]), ["a", "b"])
    assert set(labelled["per_class"]) == {"a", "b"}  # no names: the labels themselves


def test_holdout_fields_flag_any_overlap_with_training() -> None:
    assert holdout_fields("training_area_share", 0.0, hint="h") == {
        "training_area_share": 0.0,
        "holdout": True,
    }
    overlapping = holdout_fields("training_sample_share", np.float64(1 / 3), hint="h")
    assert overlapping == {"training_sample_share": 0.3333, "holdout": False}
    assert holdout_fields("training_sample_share", None, hint="h")["holdout"] is None
    tiny = holdout_fields("training_area_share", 1 / 50_000, hint="h")
    assert tiny == {"training_area_share": 0.0, "holdout": False}  # shown as 0, still no hold-out
