"""monitoring.prior: SLD prior re-estimation, CBPE and the adjusted F1 threshold — synthetic
label shifts with known answers, bad input, and the reef model trained on surveys <= 2012 and
scored on 2013–2016 (figures in docs/prevalence-shift.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score

from earthops.errors import EarthOpsError
from earthops.monitoring.prior import (
    adjust_posteriors,
    expected_confusion,
    f1_optimal_threshold,
    prior_shift_summary,
    realised_confusion,
    sld_prior,
)

PI0 = 0.3
MU = 1.0  # class means ±MU, unit variance: the Bayes posterior at PI0 is calibrated by design


def _calibrated(prior: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels at ``prior`` and posteriors calibrated at PI0 (a pure label shift)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prior).astype(int)
    x = rng.normal(np.where(y == 1, MU, -MU), 1.0)
    logit = np.log(PI0 / (1 - PI0)) + 2 * MU * x
    return y, 1 / (1 + np.exp(-logit))


def _loglik(p: np.ndarray, pi: float) -> float:
    return float(np.sum(np.log(pi * p / PI0 + (1 - pi) * (1 - p) / (1 - PI0))))


@pytest.mark.parametrize("prior", [0.065, 0.15, 0.3, 0.6])
def test_sld_recovers_a_known_prior(prior: float) -> None:
    y, p = _calibrated(prior, 40_000, seed=1)
    est = sld_prior(p, PI0)
    assert est.converged and est.label_shift_plausible
    assert est.prior == pytest.approx(y.mean(), abs=0.01)
    # the adjusted posteriors are calibrated at the new prior (in the large)
    assert est.posteriors.mean() == pytest.approx(y.mean(), abs=0.01)


def test_em_converges_with_a_non_decreasing_likelihood() -> None:
    _, p = _calibrated(0.08, 20_000, seed=2)
    est = sld_prior(p, PI0, tol=1e-10)
    assert est.converged and est.iterations < 10_000
    lik = [_loglik(p, pi) for pi in est.trace]
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(lik))
    assert est.trace[0] == PI0 and abs(est.trace[-1] - est.trace[-2]) < 1e-10


def test_at_the_training_prior_nothing_moves() -> None:
    _, p = _calibrated(PI0, 40_000, seed=3)
    est = sld_prior(p, PI0)
    assert est.prior == pytest.approx(PI0, abs=0.01)
    np.testing.assert_allclose(adjust_posteriors(p, PI0, PI0), p, atol=1e-12)


def test_cbpe_estimates_f1_and_the_adjusted_threshold_beats_the_training_one() -> None:
    _, p_train = _calibrated(PI0, 40_000, seed=4)
    model_threshold = f1_optimal_threshold(p_train, p_train)  # F1-optimal at the training prior
    y, p = _calibrated(0.065, 40_000, seed=5)
    out = prior_shift_summary(p, PI0, model_threshold, y)
    assert out["prevalence_estimate"] == pytest.approx(0.065, abs=0.01)
    assert out["adjusted_threshold"] > model_threshold  # rarer positives: a stricter threshold
    real, est = out["realised_f1"], out["estimated_f1"]
    assert real["adjusted_threshold"] > real["model_threshold"] + 0.03
    for key in ("model_threshold", "adjusted_threshold"):
        assert est[key] == pytest.approx(real[key], abs=0.03)


def test_expected_confusion_of_known_outcomes_is_the_confusion_matrix() -> None:
    rng = np.random.default_rng(6)
    y, p = (rng.random(500) < 0.3).astype(int), rng.random(500)
    got = realised_confusion(y, p, 0.4)
    tn, fp, fn, tp = confusion_matrix(y, p >= 0.4).ravel()
    assert (got.tp, got.fp, got.fn, got.tn) == (tp, fp, fn, tn)
    assert got.f1 == pytest.approx(f1_score(y, p >= 0.4))


def test_f1_optimal_threshold_is_the_brute_force_maximum() -> None:
    rng = np.random.default_rng(7)
    p = np.round(rng.random(400), 2)  # ties
    q = np.clip(p + rng.normal(0, 0.1, 400), 0, 1)
    best = f1_optimal_threshold(q, p)
    brute = max(np.unique(p), key=lambda t: expected_confusion(q, p, t).f1)
    assert expected_confusion(q, p, best).f1 == pytest.approx(expected_confusion(q, p, brute).f1)


def test_scores_that_are_not_a_label_shift_peak_at_a_boundary() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(0.0, 0.2, 2000)  # far below what any prior of PI0-calibrated scores gives
    est = sld_prior(p, PI0)
    assert est.boundary == "zero" and not est.label_shift_plausible
    assert est.prior < 0.01
    assert sld_prior(1 - p, 1 - PI0).boundary == "one"


@pytest.mark.parametrize(
    ("scores", "prior", "message"),
    [
        ([], PI0, "non-empty 1-D"),
        ([[0.1, 0.2]], PI0, "non-empty 1-D"),
        ([0.1, np.nan], PI0, "NaN/inf"),
        ([0.1, 1.2], PI0, r"outside \[0, 1\]"),
        ([0.1, 0.2], 0.0, "strictly between 0 and 1"),
        ([0.1, 0.2], 1.0, "strictly between 0 and 1"),
        ([0.4, 0.4, 0.4], PI0, "constant scores"),
    ],
)
def test_degenerate_input_is_a_clear_error(scores: list, prior: float, message: str) -> None:
    with pytest.raises(EarthOpsError, match=message):
        sld_prior(scores, prior)


def test_mismatched_shapes_and_non_binary_labels_are_errors() -> None:
    with pytest.raises(EarthOpsError, match="differ in shape"):
        expected_confusion([0.1, 0.2], [0.1], 0.5)
    with pytest.raises(EarthOpsError, match="0/1"):
        realised_confusion([0, 2], [0.1, 0.9], 0.5)
    with pytest.raises(EarthOpsError, match="differ in shape"):
        prior_shift_summary([0.1, 0.9, 0.5], PI0, 0.5, labels=[0, 1])


def test_missing_labels_are_left_out_of_the_realised_figures() -> None:
    y, p = _calibrated(0.2, 2000, seed=9)
    labels = y.astype(float)
    labels[::2] = np.nan
    out = prior_shift_summary(p, PI0, 0.5, labels)
    assert out["n_labelled"] == 1000 and out["n"] == 2000
    assert out["prevalence"] == pytest.approx(y[1::2].mean())


# ------------------------------------------------------------------------------ the real case
@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fast reef model trained on the surveys <= 2012, its scores on those rows and on the
    2013–2016 rows (same model, same reader), with the labels."""
    from conftest import MIRROR
    from earthops.data.tables import read_bleaching_surveys
    from earthops.features.reef_features import bleaching_target, prepare_surveys
    from earthops.registry.inference import load
    from earthops.settings import get_settings
    from earthops.usecases.base import TrainOptions
    from earthops.usecases.reef import ReefBleaching
    from test_reef import SMALL, SURVEYS

    if not (MIRROR / SURVEYS).is_file():
        pytest.skip(f"real survey table not found at {MIRROR / SURVEYS}")
    frame = pd.read_csv(MIRROR / SURVEYS, na_values=["NA"], low_memory=False)
    out = tmp_path_factory.mktemp("prior_surveys")
    paths = {"train": out / "train.csv", "later": out / "later.csv"}
    frame[frame["Date_Year"] <= 2012].to_csv(paths["train"], index=False, na_rep="NA")
    frame[frame["Date_Year"] > 2012].to_csv(paths["later"], index=False, na_rep="NA")
    home = tmp_path_factory.mktemp("prior_home")
    result: dict[str, object] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EARTHOPS_HOME", str(home))
        get_settings.cache_clear()
        options = TrainOptions(dataset=paths["train"], fast=True, params=dict(SMALL))
        model = load(ReefBleaching().train(options)["model_uri"])
        for name, path in paths.items():
            rows, _ = prepare_surveys(read_bleaching_surveys(path), path)
            result[name] = (bleaching_target(rows).to_numpy(), model.predict_frame(rows).scores)
    get_settings.cache_clear()
    result["threshold"] = model.card.threshold
    return result


def test_reef_prevalence_shift_figures(shifted: dict) -> None:
    """The measured direction on the real later years (not the hoped-for one): the scores fall
    (mean 0.30 → ~0.17) while the prevalence stays ~0.30, which is no label shift; SLD's
    likelihood peaks at 0, so its estimate, the adjusted threshold and prior-adjusted CBPE are
    all worse than doing nothing. CBPE on the unadjusted scores is within 0.2 of the realised
    F1 and its F1-optimal threshold beats the training threshold."""
    y_train, p_train = shifted["train"]
    y, p = shifted["later"]
    out = prior_shift_summary(p, y_train.mean(), shifted["threshold"], y)
    train_prior, realised = out["train_prevalence"], out["prevalence"]
    assert realised == pytest.approx(0.295, abs=0.005)  # 2013–2016: no fall in prevalence
    assert out["mean_score"] < realised - 0.08  # the model under-predicts these years
    assert not out["label_shift_plausible"]
    assert abs(out["prevalence_estimate"] - realised) > abs(train_prior - realised)
    real, est = out["realised_f1"], out["estimated_f1"]
    assert real["adjusted_threshold"] < real["model_threshold"]
    assert abs(est["model_threshold"] - real["model_threshold"]) > 0.3  # prior-adjusted CBPE
    unadjusted = out["unadjusted"]
    assert abs(unadjusted["estimated_f1"]["model_threshold"] - real["model_threshold"]) < 0.2
    assert unadjusted["realised_f1"] > real["model_threshold"]
    # on the training rows themselves, SLD returns the training prevalence
    assert sld_prior(p_train, y_train.mean()).prior == pytest.approx(y_train.mean(), abs=0.01)


def test_reef_resampled_to_a_lower_prevalence_is_a_label_shift_sld_tracks(shifted: dict) -> None:
    """Training rows resampled by label to 15 % bleaching (p(x | y) kept: a true label shift):
    SLD's estimate is closer to 15 % than the training prevalence and the adjusted threshold's
    F1 beats the training threshold's (in-sample scores, so optimistic calibration)."""
    y, p = shifted["train"]
    rng = np.random.default_rng(0)
    neg, pos = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    keep = np.r_[neg, rng.choice(pos, round(0.15 / 0.85 * neg.size), replace=False)]
    out = prior_shift_summary(p[keep], y.mean(), shifted["threshold"], y[keep])
    assert out["label_shift_plausible"]
    assert abs(out["prevalence_estimate"] - 0.15) < abs(y.mean() - 0.15)
    assert out["realised_f1"]["adjusted_threshold"] > out["realised_f1"]["model_threshold"]
