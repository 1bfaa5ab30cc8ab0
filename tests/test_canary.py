"""Canary verdicts from prediction-log frames: synthetic edge cases and real reef-survey traffic."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from earthops.errors import EarthOpsError, PolicyError
from earthops.serving.canary import CanaryController, CanaryPolicy, Verdict, judge

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = CanaryPolicy()
EARLY = (0.0, 500.0)  # rows all logged in the window's first 500 s


def arm_rows(
    n: int,
    version: str,
    arm: str,
    *,
    errors: int = 0,
    latency_ms: float | np.ndarray = 10.0,
    labels: object = ("a",),
    scores: object = None,
    regions: object = None,
    truth: object = None,
    ids: object = None,
    span: tuple[float, float] = (0.0, 1700.0),
) -> pd.DataFrame:
    """``n`` prediction-log rows of one arm; list-like fields cycle to length ``n``."""

    def fill(value: object) -> list:
        if value is None:
            return [None] * n
        return list(np.resize(np.asarray(value, dtype=object), n))

    status = ["error"] * errors + ["ok"] * (n - errors)
    label = fill(labels)
    label = [None if s == "error" else v for s, v in zip(status, label, strict=True)]
    return pd.DataFrame(
        {
            "time": [T0 + timedelta(seconds=s) for s in np.linspace(*span, n)],
            "request_id": fill(ids)
            if ids is not None
            else [f"{arm}-{version}-{i}" for i in range(n)],
            "usecase": "reef",
            "model_name": "reef-risk",
            "model_version": version,
            "arm": arm,
            "features": [{}] * n,
            "output": [{}] * n,
            "label": label,
            "score": np.asarray(fill(scores), dtype=float),
            "latency_ms": np.resize(np.asarray(latency_ms, dtype=float), n),
            "routing_key": None,
            "region": fill(regions),
            "status": status,
            "error": [("boom" if s == "error" else None) for s in status],
            "label_true": fill(truth),
            "feedback_time": None,
        }
    )


def canary_log(
    n_champion: int = 2000,
    n_challenger: int = 300,
    span: tuple[float, float] = (0.0, 1700.0),
    **challenger: object,
) -> pd.DataFrame:
    return pd.concat(
        [
            arm_rows(n_champion, "1", "champion", span=span),
            arm_rows(n_challenger, "2", "challenger", span=span, **challenger),
        ],
        ignore_index=True,
    )


def run(frame: pd.DataFrame, seconds: float = 1900.0, **kwargs: object) -> Verdict:
    kwargs.setdefault("policy", POLICY)
    return judge(
        frame,
        champion="1",
        challenger="2",
        started_at=T0,
        now=T0 + timedelta(seconds=seconds),
        **kwargs,
    )


def accuracy(y_true, y_pred, score) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


# ------------------------------------------------------------------------------ wait
def test_waits_for_min_requests_then_judges() -> None:
    short = run(canary_log(n_challenger=150))
    assert short.action == "wait" and short.compared == 150
    assert "150 of 200 challenger requests" in short.reasons[0]
    assert short.checks["requests"]["status"] == "fail"
    assert run(canary_log(n_challenger=200)).action == "promote"
    few_champion = run(canary_log(n_champion=120))
    assert few_champion.action == "wait" and "champion has 120 of 200" in few_champion.reasons[0]


def test_waits_for_the_window_then_promotes() -> None:
    frame = canary_log()
    early = run(frame, seconds=1750)
    assert early.action == "wait" and early.window_elapsed == 1750
    assert early.reasons == ["window 1750 s of 1800 s elapsed"]
    later = run(frame, seconds=1800)
    assert later.action == "promote" and later.window_elapsed == 1800


def test_rows_outside_the_window_and_of_other_versions_are_ignored() -> None:
    broken_old = arm_rows(500, "0", "challenger", errors=500)
    before = arm_rows(500, "2", "challenger", errors=500, span=(-900.0, -1.0))
    shadow_of_champion = arm_rows(300, "1", "shadow", errors=300)  # not the challenger's rows
    frame = pd.concat([canary_log(), broken_old, before, shadow_of_champion], ignore_index=True)
    verdict = run(frame)
    assert verdict.action == "promote" and verdict.compared == 300
    assert verdict.checks["errors"]["challenger"] == 0.0


# ------------------------------------------------------------------------------ fast rollback
def test_rolls_back_fast_on_errors_before_the_window_ends() -> None:
    verdict = run(canary_log(n_challenger=250, errors=30, span=EARLY), seconds=600)
    assert verdict.action == "rollback"
    assert verdict.reasons == ["error rate 12.0 % vs champion 0.0 % exceeds budget 1 %"]
    within_budget = run(canary_log(n_challenger=250, errors=2, span=EARLY), seconds=600)  # +0.8 %
    assert within_budget.action == "wait" and within_budget.checks["errors"]["status"] == "pass"
    just_over = run(canary_log(n_challenger=250, errors=5, span=EARLY), seconds=600)  # +2 %
    assert just_over.reasons == ["error rate 2.0 % vs champion 0.0 % exceeds budget 1 %"]


def test_latency_rollback_needs_relative_and_absolute_excess() -> None:
    def with_latency(champion_ms: float, challenger_ms: float) -> Verdict:
        frame = pd.concat(
            [
                arm_rows(2000, "1", "champion", latency_ms=champion_ms, span=EARLY),
                arm_rows(300, "2", "challenger", latency_ms=challenger_ms, span=EARLY),
            ]
        )
        return run(frame, seconds=600)

    slow = with_latency(20.0, 40.0)
    assert slow.action == "rollback"
    assert slow.reasons == ["latency p95 40.0 ms vs champion 20.0 ms exceeds +50 % and +5 ms"]
    assert with_latency(1.0, 4.0).action == "wait"  # +300 % but only +3 ms
    assert with_latency(20.0, 29.0).action == "wait"  # +9 ms but only +45 %
    assert with_latency(2.0, 8.0).action == "rollback"  # +300 % and +6 ms


# ------------------------------------------------------------------------------ after the window
def test_shadow_agreement_pairs_requests_by_id() -> None:
    ids = [f"r{i}" for i in range(400)]
    champion = arm_rows(400, "1", "champion", ids=ids, labels=["a", "b"])
    agreeing = ["a", "b"] * 190 + ["b", "a"] * 10  # 95 %
    unpaired = arm_rows(50, "2", "shadow", ids=[f"x{i}" for i in range(50)])
    good = run(
        pd.concat([champion, arm_rows(400, "2", "shadow", ids=ids, labels=agreeing), unpaired])
    )
    assert good.action == "promote" and good.compared == 400
    assert good.checks["agreement"]["agreement"] == pytest.approx(0.95)
    disagreeing = ["a", "b"] * 160 + ["b", "a"] * 40  # 80 %, same class shares
    bad = run(pd.concat([champion, arm_rows(400, "2", "shadow", ids=ids, labels=disagreeing)]))
    assert bad.action == "rollback"
    assert bad.reasons == ["shadow agreement 80.0 % of 400 paired requests below 90 %"]
    assert bad.checks["shift"]["status"] == "pass"  # only agreement catches it


@pytest.mark.parametrize("feedback_on", ["champion", "shadow"])
def test_shadow_metric_uses_feedback_from_either_row(feedback_on: str) -> None:
    ids = [f"r{i}" for i in range(400)]
    truth = ["a", "b"] * 200
    wrong = ["b", "a"] * 40 + ["a", "b"] * 160  # challenger right on 80 %
    champion = arm_rows(400, "1", "champion", ids=ids, labels=truth,
                        truth=truth if feedback_on == "champion" else None)  # fmt: skip
    shadow = arm_rows(400, "2", "shadow", ids=ids, labels=wrong,
                      truth=truth if feedback_on == "shadow" else None)  # fmt: skip
    verdict = run(
        pd.concat([champion, shadow]), metric=accuracy, policy=CanaryPolicy(min_agreement=0.5)
    )
    metric = verdict.checks["metric"]
    assert metric["labelled"] == [400, 400] and metric["champion"] == 1.0
    assert metric["challenger"] == pytest.approx(0.8) and verdict.action == "rollback"


def test_a_large_psi_on_few_canary_rows_is_not_a_shift_unless_significant() -> None:
    """21 challenger rows of the same score distribution: PSI is large by chance, KS is not
    significant, so the identical model is not rolled back for it."""
    rng = np.random.default_rng(7)
    scores_a, scores_b = rng.beta(2, 5, 300), rng.beta(2, 5, 21)

    def binary(scores: np.ndarray, version: str, arm: str) -> pd.DataFrame:
        return arm_rows(
            len(scores), version, arm, scores=scores, labels=np.where(scores >= 0.5, "1", "0")
        )

    policy = replace(POLICY, min_requests=20)
    frame = pd.concat([binary(scores_a, "1", "champion"), binary(scores_b, "2", "challenger")])
    verdict = run(frame, policy=policy)
    shift = verdict.checks["shift"]
    assert shift["psi"] > policy.max_prediction_shift and shift["ks_pvalue"] > 0.01
    assert shift["status"] == "pass" and verdict.action == "promote"


def test_prediction_shift_multiclass_and_binary() -> None:
    champion = arm_rows(2000, "1", "champion", labels=["a", "b", "c", "d"])
    shifted = arm_rows(300, "2", "challenger", labels=["a", "a", "a", "b"])
    verdict = run(pd.concat([champion, shifted]))
    assert verdict.action == "rollback" and verdict.checks["shift"]["statistic"] == "js"
    assert verdict.reasons[0].startswith("prediction shift: Jensen–Shannon distance")
    rng = np.random.default_rng(1)
    scores_a, scores_b = rng.beta(2, 5, 2000), rng.beta(2, 5, 300)

    def binary(scores: np.ndarray, n: int, version: str, arm: str) -> pd.DataFrame:
        return arm_rows(n, version, arm, scores=scores, labels=np.where(scores >= 0.5, "1", "0"))

    same = run(
        pd.concat(
            [binary(scores_a, 2000, "1", "champion"), binary(scores_b, 300, "2", "challenger")]
        )
    )
    assert same.action == "promote" and same.checks["shift"]["statistic"] == "psi"
    pushed = np.clip(scores_b + 0.2, 0, 1)
    moved = run(
        pd.concat([binary(scores_a, 2000, "1", "champion"), binary(pushed, 300, "2", "challenger")])
    )
    assert moved.action == "rollback" and "PSI of the score" in moved.reasons[0]


def _labelled_log(champion_right: float, challenger_right: float, n: int = 400) -> pd.DataFrame:
    truth = ["a", "b"] * (n // 2)

    def predictions(share: float) -> list[str]:
        wrong = round((1 - share) * n)
        return [("b" if t == "a" else "a") if i < wrong else t for i, t in enumerate(truth)]

    return pd.concat(
        [
            arm_rows(n, "1", "champion", labels=predictions(champion_right), truth=truth),
            arm_rows(n, "2", "challenger", labels=predictions(challenger_right), truth=truth),
        ]
    )


def test_metric_degradation_beyond_budget_rolls_back() -> None:
    worse = run(_labelled_log(0.9, 0.85), metric=accuracy)
    assert worse.action == "rollback"
    assert worse.reasons == [
        "primary metric 0.850 vs champion 0.900 (-5.6 %) degrades beyond budget 1 %"
    ]
    assert run(_labelled_log(0.9, 0.895), metric=accuracy).action == "promote"  # -0.6 %
    lower_better = CanaryPolicy(higher_is_better=False)
    assert run(_labelled_log(0.9, 0.85), metric=accuracy, policy=lower_better).action == "promote"
    assert run(_labelled_log(0.85, 0.9), metric=accuracy, policy=lower_better).action == "rollback"


def test_metric_alpha_requires_a_significant_degradation() -> None:
    frame = _labelled_log(0.9, 0.88, n=200)  # -2.2 % on 200 rows: within noise
    assert run(frame, metric=accuracy).action == "rollback"
    lenient = run(frame, metric=accuracy, policy=CanaryPolicy(metric_alpha=0.05))
    assert lenient.action == "promote" and lenient.checks["metric"]["pvalue"] > 0.05


def test_skipped_checks_say_why() -> None:
    verdict = run(canary_log())
    assert verdict.action == "promote"
    assert verdict.checks["metric"]["reason"] == "skipped: no primary metric supplied"
    assert verdict.checks["regions"]["reason"] == "skipped: no region in requests"
    assert verdict.checks["agreement"]["reason"].startswith("skipped: canary mode")
    assert "regions skipped: no region in requests" in verdict.reasons[0]
    few = pd.concat(
        [
            arm_rows(2000, "1", "champion", truth=["a"] * 10 + [None] * 1990),
            arm_rows(300, "2", "challenger", truth=["a"] * 5 + [None] * 295),
        ]
    )
    few_labels = run(few, metric=accuracy)
    assert few_labels.action == "promote"
    assert few_labels.checks["metric"]["reason"] == (
        "skipped: 10 champion / 5 challenger labelled rows, need 30 per arm"
    )

    def one_class_only(y_true, y_pred, score) -> float:
        raise ValueError("only one class present")

    failing = run(_labelled_log(0.9, 0.5), metric=one_class_only)
    assert failing.action == "promote"
    assert "ValueError: only one class present" in failing.checks["metric"]["reason"]


# ------------------------------------------------------------------------------ regions
def _regional_log(north_challenger: list[str], n_north: int = 120) -> pd.DataFrame:
    regions = ["north"] * n_north + ["south"] * 300 + ["east"] * 300
    champion = arm_rows(len(regions), "1", "champion", labels=["a", "b"], regions=regions)
    challenger_labels = list(np.resize(north_challenger, n_north)) + ["a", "b"] * 300
    challenger = arm_rows(
        len(regions), "2", "challenger", labels=challenger_labels, regions=regions
    )
    few = arm_rows(20, "1", "champion", labels=["a"], regions=["tiny"])
    return pd.concat(
        [champion, challenger, few, arm_rows(20, "2", "challenger", labels=["b"], regions=["tiny"])]
    )


def test_region_degrading_alone_is_held_and_named() -> None:
    verdict = run(_regional_log(["a", "a", "a", "b"]))  # north: 75 % "a" vs 50 %
    assert verdict.action == "hold"
    assert verdict.checks["shift"]["status"] == "pass"
    regions = verdict.checks["regions"]
    assert regions["flagged"] == ["north"] and "tiny" not in regions["regions"]
    assert verdict.reasons[0].startswith(
        "region(s) degrade beyond tolerance: north: class-share JS"
    )
    assert regions["regions"]["south"]["flagged"] is False


def test_small_regional_effect_is_not_a_discovery_after_bh() -> None:
    # north, 40 rows per arm: 72.5 % "a" vs 50 % — JS above 0.15 and chi-square p = 0.039,
    # significant alone but not under BH over the three eligible regions (0.05 / 3)
    verdict = run(_regional_log(["a"] * 29 + ["b"] * 11, n_north=40))
    north = verdict.checks["regions"]["regions"]["north"]
    assert north["exceeds"] is True and north["effect"] > 0.15
    assert 0.05 / 3 < north["pvalue"] < 0.05 and north["discovery"] is False
    assert verdict.action == "promote"


def test_regions_without_enough_requests_are_skipped() -> None:
    frame = pd.concat(
        [
            arm_rows(2000, "1", "champion", regions=["a", "b"] * 10 + [None] * 1980),
            arm_rows(300, "2", "challenger", regions=["a"]),
        ]
    )
    verdict = run(frame)
    assert (
        verdict.checks["regions"]["reason"] == "skipped: no region with >= 30 ok requests per arm"
    )


def test_verdict_is_json_serialisable_and_bad_logs_are_named() -> None:
    verdict = run(_regional_log(["a", "a", "a", "b"]))
    payload = json.loads(json.dumps(verdict.to_dict()))
    assert payload["action"] == "hold" and payload["checks"]["regions"]["flagged"] == ["north"]
    with pytest.raises(EarthOpsError, match=r"missing column\(s\) \['status'\]"):
        run(canary_log().drop(columns="status"))


# ------------------------------------------------------------------------------ controller
class Registry:
    """Callbacks recording what the controller applied."""

    def __init__(self, accept: bool | Exception = True) -> None:
        self.accept = accept
        self.promoted: list[tuple[str, str]] = []
        self.rolled_back: list[tuple[str, str]] = []

    def on_promote(self, usecase: str, version: str, verdict: Verdict) -> bool:
        self.promoted.append((usecase, version))
        if isinstance(self.accept, Exception):
            raise self.accept
        return self.accept

    def on_rollback(self, usecase: str, version: str, verdict: Verdict) -> None:
        self.rolled_back.append((usecase, version))


def controller(frames: dict[str, pd.DataFrame], registry: Registry) -> CanaryController:
    reads: list[tuple[str, datetime]] = []

    def read_log(usecase: str, since: datetime) -> pd.DataFrame:
        reads.append((usecase, since))
        return frames[usecase]

    made = CanaryController(read_log, registry.on_promote, registry.on_rollback, clock=lambda: T0)
    made.reads = reads  # type: ignore[attr-defined]
    return made


def test_controller_applies_each_verdict_once() -> None:
    registry = Registry()
    frames = {"reef": canary_log(), "landcover": canary_log(errors=100)}
    canary = controller(frames, registry)
    canary.observe("reef", "1", "2")
    canary.observe("landcover", "1", "2")
    first = canary.tick(T0 + timedelta(seconds=1900))
    assert {k: v.action for k, v in first.items()} == {"reef": "promote", "landcover": "rollback"}
    assert first["reef"].outcome == "promoted" and first["landcover"].outcome == "rolled back"
    assert canary.tick(T0 + timedelta(seconds=2000)) == {}
    assert registry.promoted == [("reef", "2")] and registry.rolled_back == [("landcover", "2")]
    assert [v.usecase for v in canary.history] == ["reef", "landcover"]
    assert canary.reads == [("reef", T0), ("landcover", T0)]  # type: ignore[attr-defined]


def test_controller_restarts_the_window_on_a_new_challenger_only() -> None:
    registry = Registry()
    canary = controller({"reef": canary_log()}, registry)
    canary.observe("reef", "1", "2", now=T0)
    canary.observe("reef", "1", "2", now=T0 + timedelta(seconds=1000))  # same pair: kept
    assert canary.states["reef"].started_at == T0
    canary.observe("reef", "1", "3", now=T0 + timedelta(seconds=1000))
    assert canary.states["reef"].started_at == T0 + timedelta(seconds=1000)
    verdict = canary.tick(T0 + timedelta(seconds=1900))["reef"]
    assert verdict.action == "wait" and verdict.challenger == "3" and registry.promoted == []
    canary.observe("reef", "1", None)
    assert canary.tick(T0 + timedelta(seconds=4000)) == {}


def test_refused_promotion_keeps_the_canary_running() -> None:
    registry = Registry(accept=False)
    frames = {"reef": canary_log()}
    canary = controller(frames, registry)
    canary.observe("reef", "1", "2")
    refused = canary.tick(T0 + timedelta(seconds=1900))["reef"]
    assert refused.action == "hold" and refused.outcome == "promotion refused"
    assert refused.reasons[-1] == "promotion refused by the registry policy"
    again = canary.tick(T0 + timedelta(seconds=2000))["reef"]
    assert again.action == "hold" and len(registry.promoted) == 1  # not re-applied
    frames["reef"] = canary_log(errors=60)
    broken = canary.tick(T0 + timedelta(seconds=2100))["reef"]
    assert broken.action == "rollback" and registry.rolled_back == [("reef", "2")]


def test_policy_error_is_recorded_as_the_refusal() -> None:
    registry = Registry(accept=PolicyError("min_auroc", "0.61 < 0.65"))
    canary = controller({"reef": canary_log()}, registry)
    canary.observe("reef", "1", "2")
    verdict = canary.tick(T0 + timedelta(seconds=1900))["reef"]
    assert verdict.action == "hold"
    assert verdict.reasons[-1] == "promotion refused by rule 'min_auroc': 0.61 < 0.65"


def test_run_forever_survives_a_failing_tick_and_stops() -> None:
    stop = threading.Event()
    calls = []

    def read_log(usecase: str, since: datetime) -> pd.DataFrame:
        calls.append(usecase)
        if len(calls) == 1:
            raise EarthOpsError("log store unavailable")
        stop.set()
        return canary_log()

    registry = Registry()
    canary = CanaryController(read_log, registry.on_promote, registry.on_rollback,
                              clock=lambda: T0 + timedelta(seconds=1900))  # fmt: skip
    canary.observe("reef", "1", "2", now=T0)
    canary.run_forever(0.0, stop)
    assert len(calls) == 2 and registry.promoted == [("reef", "2")]


# ------------------------------------------------------------------------------ real traffic
def auroc(y_true, y_pred, score) -> float:
    """Rank-based AUROC with "1" as the positive class (NaN with one class)."""
    positive = np.asarray(y_true) == "1"
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=float))
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@pytest.fixture(scope="module")
def reef_traffic(mirror: Path) -> dict[str, object]:
    """Held-out surveys scored by a logistic regression on (SSTA_DHW, Temp), and two broken
    copies: SSTA_DHW read as 0 everywhere, and (Temperate Northern Pacific only) features of
    another site of the same realm."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from earthops.data.tables import read_bleaching_surveys

    surveys = read_bleaching_surveys().dropna(subset=["SSTA_DHW", "Temp"]).reset_index(drop=True)
    rng = np.random.default_rng(0)
    train = rng.random(len(surveys)) < 0.5
    x = surveys[["SSTA_DHW", "Temp"]].to_numpy(dtype=float)
    y = (surveys["avg.bleach"] >= 10).to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x[train], y[train])
    served, realm = x[~train], surveys.loc[~train, "Realm_Name"].to_numpy()
    no_dhw = served.copy()
    no_dhw[:, 0] = 0.0
    mixed = served.copy()
    where = np.flatnonzero(realm == "Temperate Northern Pacific")
    mixed[where] = served[rng.permutation(where)]
    return {
        "truth": np.where(y[~train], "1", "0"),
        "realm": realm,
        "scores": {
            name: model.predict_proba(v)[:, 1]
            for name, v in {"same": served, "no_dhw": no_dhw, "mixed": mixed}.items()
        },
    }


def reef_log(traffic: dict[str, object], challenger: str, *, shadow: bool = True) -> pd.DataFrame:
    """Champion rows for every held-out survey; the challenger scores every request (shadow)
    or a random 10 % of them (canary: those requests are answered by the challenger only)."""
    scores, truth, realm = traffic["scores"], traffic["truth"], traffic["realm"]
    n = len(truth)
    rng = np.random.default_rng(7)
    to_challenger = rng.random(n) < 0.1 if not shadow else np.zeros(n, dtype=bool)
    ids = np.array([f"s{i}" for i in range(n)])

    def rows(score: np.ndarray, keep: np.ndarray, version: str, arm: str) -> pd.DataFrame:
        return arm_rows(
            int(keep.sum()), version, arm, scores=score[keep], labels=np.where(score[keep] >= 0.5, "1", "0"),
            truth=truth[keep], regions=realm[keep], ids=ids[keep], latency_ms=rng.lognormal(2.0, 0.3, int(keep.sum())),
        )  # fmt: skip

    champion = rows(scores["same"], ~to_challenger, "1", "champion")
    other = to_challenger | shadow
    return pd.concat(
        [champion, rows(scores[challenger], other, "2", "shadow" if shadow else "challenger")]
    )


def test_real_traffic_identical_challenger_is_promoted(reef_traffic: dict[str, object]) -> None:
    verdict = run(reef_log(reef_traffic, "same"), metric=auroc)
    assert verdict.action == "promote", verdict.reasons
    assert verdict.compared == len(reef_traffic["truth"]) > 10_000
    assert verdict.checks["agreement"]["agreement"] == 1.0
    assert verdict.checks["metric"]["degradation"] == 0.0
    assert "Tropical Atlantic" in verdict.checks["regions"]["regions"]


def test_real_traffic_broken_feature_is_rolled_back(reef_traffic: dict[str, object]) -> None:
    for shadow in (True, False):
        verdict = run(reef_log(reef_traffic, "no_dhw", shadow=shadow), metric=auroc)
        assert verdict.action == "rollback"
        metric = verdict.checks["metric"]
        assert metric["status"] == "fail" and metric["degradation"] > 0.05
        assert any(r.startswith("primary metric") for r in verdict.reasons)


def test_real_traffic_one_broken_realm_is_held(reef_traffic: dict[str, object]) -> None:
    verdict = run(reef_log(reef_traffic, "mixed"), metric=auroc)
    assert verdict.action == "hold", verdict.reasons
    assert verdict.checks["metric"]["status"] == "pass"  # globally within the 1 % budget
    regions = verdict.checks["regions"]
    assert regions["flagged"] == ["Temperate Northern Pacific"]
    assert regions["regions"]["Temperate Northern Pacific"]["test"] == "metric"
    assert "Temperate Northern Pacific: metric" in verdict.reasons[0]
    assert "Temperate Northern Atlantic" not in regions["regions"]  # 8 surveys: too few
