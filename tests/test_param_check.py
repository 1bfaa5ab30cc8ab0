"""Misspelt LightGBM / XGBoost parameters are errors before training, not silently dropped."""

from __future__ import annotations

import pytest

from earthops.errors import EarthOpsError
from earthops.models.estimators import make_classifier
from earthops.models.param_check import ignored_params
from earthops.usecases.base import TrainOptions
from earthops.usecases.landcover_global import TrainConfig
from earthops.usecases.landcover_timeseries.config import TrainConfig as TimeSeriesConfig
from earthops.usecases.reef.config import ReefConfig


def test_lightgbm_keys_are_checked_against_its_names_and_aliases() -> None:
    known = {"num_leaves": 15, "min_data_in_leaf": 3, "max_bin": 63, "colsample_bytree": 0.5}
    assert ignored_params(make_classifier("lightgbm", **known)) == []
    misspelt = make_classifier("lightgbm", num_leave=15, feature_fracton=0.5, learning_rate=0.1)
    assert ignored_params(misspelt) == ["feature_fracton", "num_leave"]


def test_xgboost_keys_are_the_ones_its_booster_reports_unused() -> None:
    known = {"max_depth": 3, "max_bin": 63, "grow_policy": "lossguide", "eta": 0.1}
    assert ignored_params(make_classifier("xgboost", **known)) == []
    assert ignored_params(make_classifier("xgboost", max_dpth=3, gama=0.1)) == ["gama", "max_dpth"]


def test_other_estimators_have_nothing_to_check() -> None:
    assert ignored_params(make_classifier("rf", n_estimators=5)) == []


@pytest.mark.parametrize(
    ("build", "params", "member", "key"),
    [
        (TrainConfig.from_options, {"lgbm_params": {"num_leave": 7}}, "lightgbm", "num_leave"),
        (TrainConfig.from_options, {"gate_params": {"n_estimator": 9}}, "gate", "n_estimator"),
        (
            TrainConfig.from_options,
            {"models": ["rf", "xgboost"], "xgb_params": {"max_dpth": 3}},
            "xgboost",
            "max_dpth",
        ),
        (
            TimeSeriesConfig.from_options,
            {"models": ["rf", "lightgbm"], "lgbm_params": {"lerning_rate": 0.1}},
            "lightgbm",
            "lerning_rate",
        ),
        # members this run does not fit (``earthops tune`` fits LightGBM on its own)
        (TrainConfig.from_options, {"xgb_params": {"max_dpth": 3}}, "xgboost", "max_dpth"),
        (TimeSeriesConfig.from_options, {"lgbm_params": {"num_leave": 7}}, "lightgbm", "num_leave"),
        (ReefConfig.from_options, {"xgboost": {"max_dpth": 3}}, "xgboost", "max_dpth"),
        (ReefConfig.from_options, {"lightgbm": {"num_leave": 7}}, "lightgbm", "num_leave"),
    ],
)
def test_use_case_configs_name_the_ignored_key(
    build: object, params: dict[str, object], member: str, key: str
) -> None:
    with pytest.raises(
        EarthOpsError, match=rf"member '{member}': unknown parameter\(s\) \['{key}'\]"
    ):
        build(TrainOptions(params=params))  # type: ignore[operator]
    fine = {k: {} if isinstance(v, dict) else v for k, v in params.items()}
    build(TrainOptions(params=fine))  # type: ignore[operator]  # the same config, spelt right


def test_a_lightgbm_without_its_private_alias_table_is_left_unchecked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import lightgbm.basic

    from earthops.models import param_check

    monkeypatch.delattr(lightgbm.basic, "_ConfigAliases")
    param_check._lightgbm_names.cache_clear()
    try:  # a config must still build; the check is skipped, not failed
        assert ignored_params(make_classifier("lightgbm", num_leave=3)) == []
    finally:
        param_check._lightgbm_names.cache_clear()
