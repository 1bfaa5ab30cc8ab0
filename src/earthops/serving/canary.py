"""Canary controller: compare a challenger with the champion on the prediction log and decide.

:func:`judge` is pure: it reads a prediction-log frame (the rows the server wrote) and returns a
:class:`Verdict` — ``wait``, ``rollback``, ``hold`` or ``promote``. Rules, in order:

1. **wait** while the challenger has fewer than ``min_requests`` compared observations (in shadow
   mode: shadow rows whose ``request_id`` has a champion row) or the champion has fewer rows.
2. **rollback** (fast, even before the window ends) when the challenger's error share exceeds
   the champion's by more than ``budget`` (absolute), or its latency p95 exceeds the champion's
   × (1 + ``latency_tolerance``) *and* by more than ``latency_floor_ms``.
3. **wait** until ``window_seconds`` have elapsed since ``started_at``.
4. **rollback** when shadow agreement (same label on the same request, both arms ok) is below
   ``min_agreement``; when the prediction shift exceeds ``max_prediction_shift`` (PSI of the
   score on the champion's 10 quantile bins for binary tasks — at most two labels over both arms
   and every ok row scored — else the Jensen–Shannon distance of the predicted-class shares)
   and the difference is significant (KS p-value of the scores, chi-square p-value of the class
   counts, below ``shift_alpha``: a few dozen canary rows on other requests than the champion's
   give a large PSI by chance); or
   when the primary metric on labelled rows (≥ ``min_region_requests`` per arm) degrades by more
   than ``budget`` relative to the champion's (absolute when the champion's is 0). With
   ``metric_alpha`` set, the metric must also degrade significantly (permutation p < alpha).
5. **hold** when a region with ≥ ``min_region_requests`` ok requests per arm degrades (below).
6. **promote** otherwise.

Regional rule: each eligible region gets one test, with the global threshold loosened by
``region_tolerance``: the metric's relative degradation > ``region_tolerance`` (when it has
≥ ``min_region_requests`` labelled rows per arm and a metric is given; one-sided permutation
p-value), else in shadow mode agreement < ``min_agreement − region_tolerance`` (one-sided
binomial p-value), else the JS distance of predicted-class shares > ``max_prediction_shift +
region_tolerance`` (chi-square p-value). A region is flagged when its effect exceeds the
threshold *and* its p-value is a Benjamini–Hochberg discovery at ``region_fdr`` over all eligible
regions; a region whose effect is within the threshold enters the family with p = 1
(conservative: it can only lower the number of discoveries).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats as sps

from earthops.errors import EarthOpsError, PolicyError
from earthops.logs import get_logger
from earthops.monitoring.stats import (
    benjamini_hochberg,
    bin_counts,
    chi_square,
    jensen_shannon,
    ks_2samp,
    psi,
    quantile_edges,
)

log = get_logger(__name__)

Action = Literal["wait", "promote", "rollback", "hold"]
Metric = Callable[[Sequence[str], Sequence[str], Sequence[float | None]], float]
_REQUIRED = ("time", "model_version", "arm", "status")
_OPTIONAL = ("request_id", "label", "score", "latency_ms", "region", "label_true")
_PASS, _FAIL, _SKIP = "pass", "fail", "skipped"


@dataclass(frozen=True)
class CanaryPolicy:
    """Thresholds of a canary verdict (see the module docstring for the rules)."""

    window_seconds: float = 1800.0
    min_requests: int = 200
    budget: float = 0.01
    latency_tolerance: float = 0.5
    latency_floor_ms: float = 5.0
    min_agreement: float = 0.9
    max_prediction_shift: float = 0.1
    #: a shift also needs this significance (KS on scores, chi-square on classes): with few
    #: canary rows, on different requests than the champion's, PSI alone is noise
    shift_alpha: float = 0.01
    region_tolerance: float = 0.05
    min_region_requests: int = 30
    higher_is_better: bool = True
    region_fdr: float = 0.05
    permutations: int = 400
    metric_alpha: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.min_requests < 1 or self.min_region_requests < 1:
            raise EarthOpsError(
                "CanaryPolicy: expected window_seconds > 0, min_requests >= 1 and "
                "min_region_requests >= 1"
            )
        if not 0 < self.region_fdr < 1 or self.permutations < 1:
            raise EarthOpsError("CanaryPolicy: expected 0 < region_fdr < 1 and permutations >= 1")


@dataclass(frozen=True)
class Verdict:
    """A canary decision; ``window_elapsed`` is in seconds since the window started."""

    action: Action
    reasons: list[str]
    checks: dict[str, dict[str, Any]]
    compared: int
    window_elapsed: float
    champion: str = ""
    challenger: str = ""
    usecase: str | None = None
    at: str | None = None
    outcome: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (numbers are plain floats / ints)."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _pct(share: float) -> str:
    return f"{100 * share:.1f} %"


def _pct_g(share: float) -> str:
    return f"{100 * share:g} %"


def _check(status: str, reason: str = "", **figures: Any) -> dict[str, Any]:
    return {"status": status, "reason": reason, **figures}


# ------------------------------------------------------------------------------ arms
@dataclass(frozen=True)
class _Arms:
    champion: pd.DataFrame
    challenger: pd.DataFrame
    shadow: bool
    pairs: pd.DataFrame  # shadow mode: challenger rows joined to champion rows on request_id

    @property
    def compared(self) -> int:
        return len(self.pairs) if self.shadow else len(self.challenger)


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _split(
    log_frame: pd.DataFrame, champion: str, challenger: str, started_at: datetime, now: datetime
) -> _Arms:
    missing = [c for c in _REQUIRED if c not in log_frame.columns]
    if missing:
        raise EarthOpsError(f"prediction log: missing column(s) {missing}; expected {_REQUIRED}")
    frame = log_frame.copy()
    for column in _OPTIONAL:
        if column not in frame.columns:
            frame[column] = None
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["model_version"] = frame["model_version"].astype(str)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    frame["latency_ms"] = pd.to_numeric(frame["latency_ms"], errors="coerce")
    frame = frame[(frame["time"] >= _utc(started_at)) & (frame["time"] <= _utc(now))]
    champ = frame[(frame["model_version"] == champion) & (frame["arm"] == "champion")]
    chal = frame[
        (frame["model_version"] == challenger) & frame["arm"].isin(["challenger", "shadow"])
    ]
    shadow = bool((chal["arm"] == "shadow").any())
    pairs = pd.DataFrame()
    if shadow:
        left = chal[chal["arm"] == "shadow"].drop_duplicates("request_id")
        right = champ.drop_duplicates("request_id")
        pairs = left.merge(right, on="request_id", suffixes=("_b", "_a"))
        # feedback reaches the request: the champion row's truth, else the shadow row's
        pairs["truth"] = pairs["label_true_a"].where(
            pairs["label_true_a"].notna(), pairs["label_true_b"]
        )
    return _Arms(champ, chal, shadow, pairs)


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["status"] == "ok") & frame["label"].notna()]


# ------------------------------------------------------------------------------ global checks
def _check_requests(arms: _Arms, policy: CanaryPolicy) -> dict[str, Any]:
    need = policy.min_requests
    short = []
    if arms.compared < need:
        what = "paired shadow" if arms.shadow else "challenger"
        short.append(f"{arms.compared} of {need} {what} requests observed")
    if len(arms.champion) < need:
        short.append(f"champion has {len(arms.champion)} of {need} requests")
    figures = {"compared": arms.compared, "champion": len(arms.champion), "min": need}
    if short:
        return _check(_FAIL, "waiting for requests: " + "; ".join(short), **figures)
    return _check(_PASS, **figures)


def _check_errors(arms: _Arms, policy: CanaryPolicy) -> dict[str, Any]:
    a = float((arms.champion["status"] == "error").mean())
    b = float((arms.challenger["status"] == "error").mean())
    figures = {"champion": a, "challenger": b, "budget": policy.budget}
    if b - a > policy.budget:
        reason = (
            f"error rate {_pct(b)} vs champion {_pct(a)} exceeds budget {_pct_g(policy.budget)}"
        )
        return _check(_FAIL, reason, **figures)
    return _check(_PASS, **figures)


def _check_latency(arms: _Arms, policy: CanaryPolicy) -> dict[str, Any]:
    a_ms = arms.champion["latency_ms"].dropna().to_numpy(dtype=float)
    b_ms = arms.challenger["latency_ms"].dropna().to_numpy(dtype=float)
    if a_ms.size == 0 or b_ms.size == 0:
        return _check(_SKIP, "skipped: no latency recorded for one arm")
    a, b = float(np.percentile(a_ms, 95)), float(np.percentile(b_ms, 95))
    limit = max(a * (1 + policy.latency_tolerance), a + policy.latency_floor_ms)
    figures = {"champion_p95_ms": a, "challenger_p95_ms": b, "limit_ms": limit}
    if b > limit:
        reason = (
            f"latency p95 {b:.1f} ms vs champion {a:.1f} ms exceeds "
            f"+{_pct_g(policy.latency_tolerance)} and +{policy.latency_floor_ms:g} ms"
        )
        return _check(_FAIL, reason, **figures)
    return _check(_PASS, **figures)


def _check_agreement(arms: _Arms, policy: CanaryPolicy) -> dict[str, Any]:
    if not arms.shadow:
        return _check(_SKIP, "skipped: canary mode, the arms answered different requests")
    agreed, n = _agreement(arms.pairs)
    if n == 0:
        return _check(_SKIP, "skipped: no paired request answered ok by both arms")
    share = agreed / n
    figures = {"agreement": share, "pairs": n, "min": policy.min_agreement}
    if share < policy.min_agreement:
        reason = (
            f"shadow agreement {_pct(share)} of {n} paired requests "
            f"below {_pct_g(policy.min_agreement)}"
        )
        return _check(_FAIL, reason, **figures)
    return _check(_PASS, **figures)


def _agreement(pairs: pd.DataFrame) -> tuple[int, int]:
    both = pairs[
        (pairs["status_a"] == "ok")
        & (pairs["status_b"] == "ok")
        & pairs["label_a"].notna()
        & pairs["label_b"].notna()
    ]
    same = both["label_a"].astype(str) == both["label_b"].astype(str)
    return int(same.sum()), len(both)


def _label_counts(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    a, b = a.astype(str), b.astype(str)
    labels = sorted(set(a) | set(b))
    count_a = a.value_counts().reindex(labels, fill_value=0).to_numpy(dtype=float)
    count_b = b.value_counts().reindex(labels, fill_value=0).to_numpy(dtype=float)
    return count_a, count_b


def _check_shift(arms: _Arms, policy: CanaryPolicy) -> dict[str, Any]:
    a, b = _ok(arms.champion), _ok(arms.challenger)
    if a.empty or b.empty:
        return _check(_SKIP, "skipped: no ok prediction with a label in one arm")
    count_a, count_b = _label_counts(a["label"], b["label"])
    js = jensen_shannon(count_a, count_b)
    binary = count_a.size <= 2 and a["score"].notna().all() and b["score"].notna().all()
    limit = policy.max_prediction_shift
    if binary:
        score_a, score_b = a["score"].to_numpy(float), b["score"].to_numpy(float)
        edges = quantile_edges(score_a, 10)
        value = psi(bin_counts(score_a, edges), bin_counts(score_b, edges))
        ks = ks_2samp(score_a, score_b)
        pvalue = ks.pvalue
        figures = {"statistic": "psi", "psi": value, "ks": ks.statistic, "ks_pvalue": ks.pvalue}
        what = "PSI of the score"
    else:
        value, figures, what = js, {"statistic": "js"}, "Jensen–Shannon distance of class shares"
        pvalue = _chi_square_p(count_a, count_b)
        figures["chi2_pvalue"] = pvalue
    figures |= {"js": js, "value": value, "max": limit, "pvalue": pvalue}
    if value > limit and pvalue < policy.shift_alpha:
        return _check(
            _FAIL,
            f"prediction shift: {what} {value:.3f} exceeds {limit:g} (p={pvalue:.2g})",
            **figures,
        )
    return _check(_PASS, **figures)


def _chi_square_p(count_a: np.ndarray, count_b: np.ndarray) -> float:
    """Homogeneity p-value of two label-count vectors (1 when there is one class only)."""
    keep = (count_a + count_b) > 0
    if keep.sum() < 2:
        return 1.0
    return float(chi_square(count_a[keep], count_b[keep])[1])


# ------------------------------------------------------------------------------ metric
@dataclass(frozen=True)
class _Sample:
    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.y_true)

    def take(self, index: np.ndarray) -> _Sample:
        return _Sample(self.y_true[index], self.y_pred[index], self.score[index])


def _sample(frame: pd.DataFrame, suffix: str = "", truth: str = "label_true") -> _Sample:
    score = frame[f"score{suffix}"].to_numpy(dtype=float)
    return _Sample(
        frame[truth].astype(str).to_numpy(), frame[f"label{suffix}"].astype(str).to_numpy(), score
    )


def _labelled(arms: _Arms, region: str | None = None) -> tuple[_Sample, _Sample, bool]:
    """Labelled ok rows per arm; in shadow mode the same requests, aligned (paired)."""
    if arms.shadow:
        p = arms.pairs
        keep = (p["status_a"] == "ok") & (p["status_b"] == "ok") & p["truth"].notna()
        keep &= p["label_a"].notna() & p["label_b"].notna()
        if region is not None:
            keep &= p["region_a"].astype(str) == region
        p = p[keep]
        return _sample(p, "_a", "truth"), _sample(p, "_b", "truth"), True
    sides = []
    for frame in (arms.champion, arms.challenger):
        rows = _ok(frame)
        rows = rows[rows["label_true"].notna()]
        if region is not None:
            rows = rows[rows["region"].astype(str) == region]
        sides.append(_sample(rows))
    return sides[0], sides[1], False


def _score(metric: Metric, s: _Sample) -> float:
    scores = [None if not np.isfinite(v) else float(v) for v in s.score]
    return float(metric(list(s.y_true), list(s.y_pred), scores))


def _degradation(a: float, b: float, higher_is_better: bool) -> float:
    """Relative loss of ``b`` against ``a`` (absolute when ``a`` is 0); > 0 is worse."""
    loss = (a - b) if higher_is_better else (b - a)
    return loss / abs(a) if a != 0 else loss


def _metric_pvalue(
    metric: Metric, a: _Sample, b: _Sample, paired: bool, observed: float, policy: CanaryPolicy
) -> float:
    """One-sided permutation p-value of a degradation at least ``observed`` under no difference:
    arm labels swapped within pairs (shadow) or shuffled over the pooled rows (canary)."""
    rng = np.random.default_rng(policy.seed)
    hits = 0
    for _ in range(policy.permutations):
        if paired:
            swap = rng.random(len(a)) < 0.5
            pa = _Sample(
                a.y_true, np.where(swap, b.y_pred, a.y_pred), np.where(swap, b.score, a.score)
            )
            pb = _Sample(
                a.y_true, np.where(swap, a.y_pred, b.y_pred), np.where(swap, a.score, b.score)
            )
        else:
            pooled = _Sample(
                *(np.concatenate([x, y]) for x, y in zip(_cols(a), _cols(b), strict=True))
            )
            order = rng.permutation(len(pooled))
            pa, pb = pooled.take(order[: len(a)]), pooled.take(order[len(a) :])
        m_a, m_b = _score(metric, pa), _score(metric, pb)
        if _degradation(m_a, m_b, policy.higher_is_better) >= observed:
            hits += 1
    return (hits + 1) / (policy.permutations + 1)


def _cols(s: _Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return s.y_true, s.y_pred, s.score


def _compare_metric(
    metric: Metric, a: _Sample, b: _Sample, policy: CanaryPolicy
) -> tuple[float, float, float] | str:
    """(champion, challenger, degradation), or why the metric could not be computed."""
    try:
        m_a, m_b = _score(metric, a), _score(metric, b)
    except (ValueError, ZeroDivisionError, EarthOpsError) as exc:
        return f"metric failed ({type(exc).__name__}: {exc})"
    if not (np.isfinite(m_a) and np.isfinite(m_b)):
        return f"metric not finite (champion {m_a}, challenger {m_b})"
    return m_a, m_b, _degradation(m_a, m_b, policy.higher_is_better)


def _check_metric(arms: _Arms, policy: CanaryPolicy, metric: Metric | None) -> dict[str, Any]:
    if metric is None:
        return _check(_SKIP, "skipped: no primary metric supplied")
    a, b, paired = _labelled(arms)
    need = policy.min_region_requests
    if min(len(a), len(b)) < need:
        return _check(
            _SKIP,
            f"skipped: {len(a)} champion / {len(b)} challenger labelled rows, need {need} per arm",
        )
    result = _compare_metric(metric, a, b, policy)
    if isinstance(result, str):
        return _check(_SKIP, f"skipped: {result}")
    m_a, m_b, loss = result
    figures: dict[str, Any] = {"champion": m_a, "challenger": m_b, "degradation": loss}
    figures |= {"labelled": [len(a), len(b)], "budget": policy.budget}
    failed = loss > policy.budget
    if failed and policy.metric_alpha is not None:
        figures["pvalue"] = _metric_pvalue(metric, a, b, paired, loss, policy)
        failed = figures["pvalue"] < policy.metric_alpha
    if failed:
        reason = (
            f"primary metric {m_b:.3f} vs champion {m_a:.3f} ({_pct(-loss)}) "
            f"degrades beyond budget {_pct_g(policy.budget)}"
        )
        return _check(_FAIL, reason, **figures)
    return _check(_PASS, **figures)


# ------------------------------------------------------------------------------ regions
def _region_test(
    arms: _Arms, region: str, policy: CanaryPolicy, metric: Metric | None
) -> dict[str, Any]:
    """One region's effect, threshold, whether it exceeds and its p-value (1 when within)."""
    if metric is not None:
        a, b, paired = _labelled(arms, region)
        if min(len(a), len(b)) >= policy.min_region_requests:
            result = _compare_metric(metric, a, b, policy)
            if not isinstance(result, str):
                m_a, m_b, loss = result
                exceeds = loss > policy.region_tolerance
                p = _metric_pvalue(metric, a, b, paired, loss, policy) if exceeds else 1.0
                return {"test": "metric", "champion": m_a, "challenger": m_b,
                        "effect": loss, "threshold": policy.region_tolerance,
                        "exceeds": exceeds, "pvalue": p}  # fmt: skip
    if arms.shadow:
        pairs = arms.pairs[arms.pairs["region_a"].astype(str) == region]
        agreed, n = _agreement(pairs)
        limit = policy.min_agreement - policy.region_tolerance
        share = agreed / n if n else 1.0
        exceeds = n > 0 and share < limit
        p = float(sps.binom.cdf(agreed, n, limit)) if exceeds else 1.0
        return {"test": "agreement", "effect": share, "threshold": limit, "pairs": n,
                "exceeds": exceeds, "pvalue": p}  # fmt: skip
    a, b = _ok(arms.champion), _ok(arms.challenger)
    count_a, count_b = _label_counts(
        a.loc[a["region"].astype(str) == region, "label"],
        b.loc[b["region"].astype(str) == region, "label"],
    )
    js = jensen_shannon(count_a, count_b)
    limit = policy.max_prediction_shift + policy.region_tolerance
    exceeds = js > limit
    p = chi_square(count_a, count_b)[1] if exceeds else 1.0
    return {"test": "shift", "effect": js, "threshold": limit, "exceeds": exceeds, "pvalue": p}


def _check_regions(arms: _Arms, policy: CanaryPolicy, metric: Metric | None) -> dict[str, Any]:
    a, b = _ok(arms.champion), _ok(arms.challenger)
    a, b = a[a["region"].notna()], b[b["region"].notna()]
    if a.empty and b.empty:
        return _check(_SKIP, "skipped: no region in requests")
    need = policy.min_region_requests
    n_a, n_b = a["region"].astype(str).value_counts(), b["region"].astype(str).value_counts()
    eligible = sorted(r for r in n_a.index if n_a[r] >= need and n_b.get(r, 0) >= need)
    if not eligible:
        return _check(_SKIP, f"skipped: no region with >= {need} ok requests per arm")
    tests = {r: _region_test(arms, r, policy, metric) for r in eligible}
    found = benjamini_hochberg(np.array([t["pvalue"] for t in tests.values()]), policy.region_fdr)
    flagged = []
    for (region, test), discovery in zip(tests.items(), found, strict=True):
        test |= {"requests": [int(n_a[region]), int(n_b[region])], "discovery": bool(discovery)}
        test["flagged"] = bool(test["exceeds"] and discovery)
        if test["flagged"]:
            flagged.append(region)
    figures = {"regions": tests, "flagged": flagged, "fdr": policy.region_fdr}
    if not flagged:
        return _check(_PASS, **figures)
    detail = "; ".join(_region_text(r, tests[r]) for r in flagged)
    return _check(_FAIL, f"region(s) degrade beyond tolerance: {detail}", **figures)


def _region_text(region: str, test: dict[str, Any]) -> str:
    p = f"p={test['pvalue']:.3g}"
    if test["test"] == "metric":
        return (
            f"{region}: metric {test['challenger']:.3f} vs champion {test['champion']:.3f} "
            f"({_pct(-test['effect'])}, tolerance {_pct_g(test['threshold'])}, {p})"
        )
    if test["test"] == "agreement":
        return f"{region}: agreement {_pct(test['effect'])} below {_pct_g(test['threshold'])} ({p})"
    return f"{region}: class-share JS {test['effect']:.3f} above {test['threshold']:g} ({p})"


# ------------------------------------------------------------------------------ judge
def judge(
    log: pd.DataFrame,
    *,
    champion: str,
    challenger: str,
    policy: CanaryPolicy,
    metric: Metric | None = None,
    started_at: datetime,
    now: datetime,
) -> Verdict:
    """Decide on a canary from prediction-log rows alone (pure; see the module docstring)."""
    arms = _split(log, str(champion), str(challenger), started_at, now)
    elapsed = float((_utc(now) - _utc(started_at)).total_seconds())

    def verdict(action: Action, reasons: list[str]) -> Verdict:
        return Verdict(action, reasons, checks, arms.compared, elapsed, str(champion),
                       str(challenger), at=_utc(now).isoformat())  # fmt: skip

    checks: dict[str, dict[str, Any]] = {"requests": _check_requests(arms, policy)}
    if checks["requests"]["status"] == _FAIL:
        return verdict("wait", [checks["requests"]["reason"]])
    checks["errors"] = _check_errors(arms, policy)
    checks["latency"] = _check_latency(arms, policy)
    if failed := _failures(checks):
        return verdict("rollback", failed)
    if elapsed < policy.window_seconds:
        checks["window"] = _check(
            _FAIL, f"window {elapsed:.0f} s of {policy.window_seconds:g} s elapsed"
        )
        return verdict("wait", [checks["window"]["reason"]])
    checks["window"] = _check(_PASS, elapsed=elapsed)
    checks["agreement"] = _check_agreement(arms, policy)
    checks["shift"] = _check_shift(arms, policy)
    checks["metric"] = _check_metric(arms, policy, metric)
    if failed := _failures(checks):
        return verdict("rollback", failed)
    checks["regions"] = _check_regions(arms, policy, metric)
    if failed := _failures(checks):
        return verdict("hold", failed)
    skipped = [f"{name} {c['reason']}" for name, c in checks.items() if c["status"] == _SKIP]
    note = f"all checks passed on {arms.compared} compared requests"
    return verdict("promote", [note + (f" ({'; '.join(skipped)})" if skipped else "")])


def _failures(checks: dict[str, dict[str, Any]]) -> list[str]:
    return [c["reason"] for c in checks.values() if c["status"] == _FAIL]


# ------------------------------------------------------------------------------ controller
@dataclass
class _State:
    champion: str
    challenger: str
    started_at: datetime
    finished: str | None = None  # "promoted" / "rolled back": nothing left to apply
    refused: str | None = None  # the registry's refusal of a promotion


@dataclass
class CanaryController:
    """Runs :func:`judge` per use case and applies each verdict once through callbacks.

    ``read_log(usecase, since)`` returns prediction-log rows; ``on_promote`` returns whether
    the registry accepted (or raises :class:`PolicyError`, whose message is recorded); a refused
    promotion keeps the canary running (later ``promote``
    verdicts are recorded as ``hold`` with the refusal, not re-applied) until :meth:`observe`
    sees a new pair. ``metrics`` maps a use case to its primary metric.
    """

    read_log: Callable[[str, datetime], pd.DataFrame]
    on_promote: Callable[[str, str, Verdict], bool]
    on_rollback: Callable[[str, str, Verdict], None]
    policy: CanaryPolicy = field(default_factory=CanaryPolicy)
    metrics: dict[str, Metric] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    history: list[Verdict] = field(default_factory=list)
    states: dict[str, _State] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def observe(
        self, usecase: str, champion: str, challenger: str | None, now: datetime | None = None
    ) -> None:
        """Track a use case's aliases: a new pair restarts the window, the same pair keeps it;
        no challenger stops the canary."""
        with self._lock:
            if challenger is None:
                self.states.pop(usecase, None)
                return
            state = self.states.get(usecase)
            if state and (state.champion, state.challenger) == (str(champion), str(challenger)):
                return
            self.states[usecase] = _State(str(champion), str(challenger), now or self.clock())
            log.info("canary started", usecase=usecase, champion=champion, challenger=challenger)

    def tick(self, now: datetime | None = None) -> dict[str, Verdict]:
        """Judge every running canary once and apply promote / rollback verdicts."""
        now = now or self.clock()
        verdicts = {}
        with self._lock:
            for usecase, state in list(self.states.items()):
                if state.finished:
                    continue
                frame = self.read_log(usecase, state.started_at)
                verdict = judge(frame, champion=state.champion, challenger=state.challenger,
                                policy=self.policy, metric=self.metrics.get(usecase),
                                started_at=state.started_at, now=now)  # fmt: skip
                verdict = self._apply(usecase, state, replace(verdict, usecase=usecase))
                self.history.append(verdict)
                verdicts[usecase] = verdict
        return verdicts

    def _apply(self, usecase: str, state: _State, verdict: Verdict) -> Verdict:
        if verdict.action == "rollback":
            self.on_rollback(usecase, state.challenger, verdict)
            state.finished = "rolled back"
            log.warning("canary rolled back", usecase=usecase, reasons=verdict.reasons)
            return replace(verdict, outcome="rolled back")
        if verdict.action != "promote":
            return verdict
        if state.refused:
            reasons = [*verdict.reasons, f"promotion refused earlier: {state.refused}"]
            return replace(verdict, action="hold", reasons=reasons, outcome="promotion refused")
        try:
            accepted = self.on_promote(usecase, state.challenger, verdict)
            refusal = "promotion refused by the registry policy"
        except PolicyError as exc:
            accepted, refusal = False, str(exc)
        if accepted:
            state.finished = "promoted"
            log.info("canary promoted", usecase=usecase, challenger=state.challenger)
            return replace(verdict, outcome="promoted")
        state.refused = refusal
        log.warning("canary promotion refused", usecase=usecase, challenger=state.challenger)
        reasons = [*verdict.reasons, state.refused]
        return replace(verdict, action="hold", reasons=reasons, outcome="promotion refused")

    def run_forever(self, interval: float, stop_event: threading.Event) -> None:
        """Tick every ``interval`` seconds until ``stop_event`` is set (for a daemon thread);
        a failing tick is logged and the loop goes on."""
        while not stop_event.is_set():
            try:
                self.tick()
            except Exception as exc:  # a background loop must survive one bad tick
                log.error("canary tick failed", error=f"{type(exc).__name__}: {exc}")
            stop_event.wait(interval)
