"""The fast small-batch predict path of the reef model gives the reference path's answers.

On a real registered reef model (``serving_support.served_home``: real surveys, real Feast
online store) and real survey rows: one-row, small-batch and large-batch probabilities equal
those of the unchanged reference path (pandera validation, column-by-column featurizer, each
member's own ``predict_proba``), and bad input still fails with the same errors.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import serving_support
from earthops.errors import DataError
from earthops.features.reef_features import FAST_ROWS, prepare_surveys
from earthops.registry.inference import LoadedModel, load
from earthops.usecases.reef.model import SMALL_BATCH
from serving_support import NAME, _later_rows, _sites

served_home = serving_support.served_home
home = serving_support.home


def _reference(model: Any, X: pd.DataFrame) -> np.ndarray:
    """P(bleaching) as ``ReefRiskModel.predict_proba`` computed it before the fast path."""
    feats = model.featurizer_._transform_reference(X)
    probs = pd.DataFrame(
        {name: est.predict_proba(feats)[:, 1] for name, est in model.members_.items()},
        index=X.index,
    )
    return np.clip(model.calibrator_.transform(model.combine(probs)), 0.0, 1.0)


@pytest.fixture
def champion(home: Path) -> LoadedModel:
    return load(f"models:/{NAME}@champion")


@pytest.fixture(scope="module")
def surveys() -> pd.DataFrame:
    from earthops.data.tables import read_bleaching_surveys

    rows, _ = prepare_surveys(read_bleaching_surveys())
    return rows.sample(frac=1.0, random_state=7)


def test_one_row_small_and_large_batches_equal_the_reference(
    champion: LoadedModel, surveys: pd.DataFrame
) -> None:
    model, columns = champion.model, champion.card.input_columns
    X = surveys[columns]
    assert len(X) > FAST_ROWS  # the large batch takes the reference-size path
    # one row at a time (the server's lone requests), later years the model never saw
    later = _later_rows(40)[columns]
    one = np.array([model.predict_proba(later.iloc[[i]])[0, 1] for i in range(len(later))])
    np.testing.assert_allclose(one, _reference(model, later), rtol=0, atol=1e-12)
    # small batches (≤ SMALL_BATCH: one-thread boosters), a batch past SMALL_BATCH on the
    # fast featurizer, and one past FAST_ROWS (pandera, as before)
    for n in (2, 17, SMALL_BATCH, SMALL_BATCH + 1, FAST_ROWS, len(X)):
        part = X.iloc[:n]
        served = model.predict_proba(part)
        assert served.shape == (n, 2)
        np.testing.assert_allclose(served[:, 1], _reference(model, part), rtol=0, atol=1e-12)
        np.testing.assert_allclose(served[:, 0], 1 - served[:, 1], rtol=0, atol=0)
    # the fast featurizer's frame is the reference's, value for value
    part = X.iloc[:300]
    fast = model.featurizer_.transform(part)
    pd.testing.assert_frame_equal(fast, model.featurizer_._transform_reference(part))
    # and via the shared predict path, one row from its own frame and within a batch
    single = champion.predict_frame(X.iloc[[3]]).probabilities[0, 1]
    batch = champion.predict_frame(X.iloc[: FAST_ROWS + 10]).probabilities[3, 1]
    assert abs(single - batch) <= 1e-12


def test_online_store_records_equal_the_reference(champion: LoadedModel) -> None:
    """Records served by site id (Feast online lookup → one-row frames) score as the
    reference path scores the same frames stacked."""
    from earthops.usecases.reef.serving import ReefRecord, prepare

    sites = _sites(30)
    frames = [prepare(champion, [ReefRecord(site_id=s)]).frame for s in sites]
    one = np.array([champion.predict_frame(f).probabilities[0, 1] for f in frames])
    stacked = prepare(champion, [ReefRecord(site_id=s) for s in sites]).frame
    np.testing.assert_allclose(one, _reference(champion.model, stacked), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        champion.predict_frame(stacked).probabilities[:, 1], one, rtol=0, atol=1e-12
    )


def _bad_frames(good: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, str]]:
    """Frames the schema or the featurizer rejects → the column the error must name."""

    def edit(column: str, value: Any, rows: int = 1) -> pd.DataFrame:
        frame = good.iloc[:rows].copy()
        frame[column] = frame[column].astype(object)
        frame.iloc[0, frame.columns.get_loc(column)] = value
        return frame

    return {
        "sst out of range": (edit("Temp", 99.0), "Temp"),
        "negative dhw": (edit("SSTA_DHW", -1.0, rows=5), "SSTA_DHW"),
        "latitude missing": (edit("Latitude_Degrees", np.nan), "Latitude_Degrees"),
        "text sst": (edit("Temp", "hot"), "Temp"),
        "unknown ocean": (edit("Ocean_Name", "Atlantis"), "Ocean_Name"),
        "realm missing": (edit("Realm_Name", None, rows=3), "Realm_Name"),
        "empty realm": (edit("Realm_Name", ""), "Realm_Name"),
        "no turbidity": (good.iloc[:1].drop(columns="Turbidity"), "Turbidity"),
        "depth too deep": (edit("Depth_m", 900.0), "Depth_m"),
    }


def test_bad_input_gives_the_same_clear_errors(
    champion: LoadedModel, surveys: pd.DataFrame
) -> None:
    model = champion.model
    good = surveys[champion.card.input_columns]
    for case, (frame, column) in _bad_frames(good).items():
        with pytest.raises(DataError) as reference:
            model.featurizer_._transform_reference(frame)
        with pytest.raises(DataError) as fast:
            model.predict_proba(frame)
        assert str(fast.value) == str(reference.value), case
        assert column in str(fast.value), case
        # the same rows inside a batch past FAST_ROWS: the batch path's error is unchanged
        big = pd.concat([frame, good.iloc[: FAST_ROWS + 1][frame.columns]], ignore_index=True)
        with pytest.raises(DataError) as batch:
            model.predict_proba(big)
        with pytest.raises(DataError) as batch_reference:
            model.featurizer_._transform_reference(big)
        assert str(batch.value) == str(batch_reference.value), case


def test_unknown_categories_and_unseen_realms_as_the_reference(
    champion: LoadedModel, surveys: pd.DataFrame
) -> None:
    """``unknown='category'`` encodes an unknown name the same way on both paths, and the
    counts of realms without training rows are the reference's."""
    featurizer = copy.deepcopy(champion.model.featurizer_)
    featurizer.unknown = "category"
    rows = surveys[champion.card.input_columns].iloc[:50].copy()
    rows.iloc[0, rows.columns.get_loc("Realm_Name")] = "Atlantis Realm"
    pd.testing.assert_frame_equal(featurizer.transform(rows), featurizer._transform_reference(rows))
    counts = featurizer.unknown_counts_
    featurizer.transform(rows)
    assert featurizer.unknown_counts_ == counts == {"Realm_Name": 1}
    untrained = sorted(set(featurizer.realms_) - set(featurizer.trained_realms_))
    if untrained:
        rows = surveys[champion.card.input_columns].iloc[:5].copy()
        rows["Realm_Name"] = untrained[0]
        featurizer.transform(rows)
        fast_counts = featurizer.unseen_counts_
        featurizer._transform_reference(rows)
        assert fast_counts == featurizer.unseen_counts_ == {untrained[0]: 5}


def test_caches_are_not_pickled_and_old_models_still_predict(
    champion: LoadedModel, surveys: pd.DataFrame
) -> None:
    model = champion.model
    X = surveys[champion.card.input_columns].iloc[:8]
    before = model.predict_proba(X)
    assert "_single_thread_boosters" in model.__dict__
    blob = pickle.dumps(model)
    restored = pickle.loads(blob)
    assert "_single_thread_boosters" not in restored.__dict__  # as a model logged before
    np.testing.assert_array_equal(restored.predict_proba(X), before)
    # the live model kept its caches
    assert "_single_thread_boosters" in model.__dict__


def test_batched_online_lookup_levels_and_logged_features_as_before(
    champion: LoadedModel,
) -> None:
    """One online-store call for a request's sites gives each site's single lookup; the
    alert levels and the prediction-log features are those computed one record at a time."""
    from earthops.errors import UnknownEntityError
    from earthops.features.thermal import alert_level_from_dhw
    from earthops.usecases.reef.serving import (
        ReefRecord,
        online_survey_row,
        online_survey_rows,
        prepare,
        respond,
    )

    sites = _sites(25)
    batched = online_survey_rows([*sites, sites[0]])
    singles = [online_survey_row(s) for s in [*sites, sites[0]]]
    assert repr(batched) == repr(singles)  # NaN-aware equality of the dicts
    with pytest.raises(UnknownEntityError) as one:
        online_survey_row(99999999)
    with pytest.raises(UnknownEntityError) as many:
        online_survey_rows([sites[0], 99999999])
    assert str(many.value) == str(one.value)

    prepared = prepare(champion, [ReefRecord(site_id=s) for s in sites])
    answers = respond(champion, prepared, champion.predict_frame(prepared.frame))
    for answer, ctx in zip(answers, prepared.context, strict=True):
        dhw = ctx["dhw"]
        level = None if dhw is None else int(alert_level_from_dhw(np.array([dhw]))[0])
        assert answer.alert_level == level
    frame = prepared.frame
    reference = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    assert prepared.features() == reference
    assert [type(v) for v in prepared.features()[0].values()] == [
        type(v) for v in reference[0].values()
    ]
