"""Label-free checks of a binary classifier under a class-prior (prevalence) shift (numpy only).

* **SLD / EM prior re-estimation** (Saerens, Latinne & Decaestecker 2002, *Neural Computation*
  14:21–41). Under label shift (``p(x | y)`` fixed, ``p(y)`` changed) the posteriors of a model
  calibrated at the training prior ``π₀`` become, at a new prior ``π``,
  ``q = a·p / (a·p + b·(1 − p))`` with ``a = π/π₀``, ``b = (1 − π)/(1 − π₀)``. EM alternates
  ``q`` (E step) and ``π = mean(q)`` (M step) from ``π = π₀``; each step does not decrease the
  likelihood of the unlabelled scores, and it stops when ``π`` moves by less than ``tol``.
* **CBPE** (confidence-based performance estimation, as NannyML does): with calibrated
  posteriors ``q`` and the model's decisions ``d = [p ≥ t]``, the expected confusion matrix is
  ``TP = Σ d·q``, ``FP = Σ d·(1 − q)``, ``FN = Σ (1 − d)·q``, ``TN = Σ (1 − d)·(1 − q)``; the
  estimated precision / recall / F1 are read from it (F1 = 2·TP / (2·TP + FP + FN)). The
  posteriors are the prior-adjusted ``q`` of SLD, not the raw scores.
* **Adjusted threshold**: the threshold on the model's score ``p`` that maximises the CBPE F1
  under the re-estimated prior. Since ``2·TP + FP + FN = k + Σq`` (``k`` predicted positives),
  the estimated F1 of the top-``k`` rows is ``2·Σ_top-k q / (k + Σ q)``; the threshold is the
  score of the best ``k``. ``q`` is monotone in ``p``, so it is a threshold on ``p`` directly
  comparable with the model card's (chosen at the training prior).

All of it assumes the scores are calibrated at ``π₀`` and that the shift is a label shift;
covariate shift the model already tracks (lower heat stress → lower scores) is not a prior
shift, and adjusting for it as one counts it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from earthops.errors import EarthOpsError

_EPS = 1e-12


@dataclass(frozen=True)
class PriorEstimate:
    """SLD result: the new prior, the adjusted posteriors and how EM got there."""

    prior: float
    train_prior: float
    posteriors: np.ndarray = field(repr=False)
    iterations: int
    converged: bool
    #: ``"zero"`` / ``"one"`` when the likelihood's maximum is on that boundary (the scores are
    #: not what a label shift of calibrated scores produces), else ``None``
    boundary: str | None = None
    trace: list[float] = field(default_factory=list, repr=False)

    @property
    def label_shift_plausible(self) -> bool:
        return self.boundary is None


@dataclass(frozen=True)
class ExpectedConfusion:
    """CBPE's expected confusion matrix at one threshold and the metrics read from it."""

    threshold: float
    tp: float
    fp: float
    fn: float
    tn: float

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp > 0 else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn > 0 else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom > 0 else 0.0

    @property
    def accuracy(self) -> float:
        total = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.tn) / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        keys = ("threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "accuracy")
        return {k: float(getattr(self, k)) for k in keys}


def check_scores(scores: object, name: str = "scores") -> np.ndarray:
    """A non-empty 1-D array of finite probabilities in [0, 1], else a clear error."""
    p = np.asarray(scores, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise EarthOpsError(f"{name}: expected a non-empty 1-D array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise EarthOpsError(f"{name}: {int((~np.isfinite(p)).sum())} NaN/inf value(s)")
    if p.min() < 0 or p.max() > 1:
        raise EarthOpsError(f"{name}: values outside [0, 1]; expected probabilities")
    return p


def check_prior(prior: float, name: str = "train_prior") -> float:
    prior = float(prior)
    if not 0.0 < prior < 1.0:
        raise EarthOpsError(f"{name}={prior}: expected a prevalence strictly between 0 and 1")
    return prior


def adjust_posteriors(scores: object, train_prior: float, new_prior: float) -> np.ndarray:
    """Posteriors of scores calibrated at ``train_prior`` re-weighted to ``new_prior``."""
    p = check_scores(scores)
    pi0 = check_prior(train_prior)
    pi = float(np.clip(new_prior, 0.0, 1.0))
    pos = (pi / pi0) * p
    neg = ((1 - pi) / (1 - pi0)) * (1 - p)
    return pos / np.maximum(pos + neg, _EPS)


def likelihood_boundary(scores: np.ndarray, train_prior: float) -> str | None:
    """Where the (concave) likelihood of the prior peaks if on a boundary: its slope at π = 0 is
    ``Σ (a − b)/b`` and at π = 1 ``Σ (a − b)/a`` with ``a = p/π₀``, ``b = (1 − p)/(1 − π₀)``."""
    a, b = scores / train_prior, (1 - scores) / (1 - train_prior)
    with np.errstate(divide="ignore", invalid="ignore"):
        if np.all(b > 0) and np.sum((a - b) / b) <= 0:
            return "zero"
        if np.all(a > 0) and np.sum((a - b) / a) >= 0:
            return "one"
    return None


def sld_prior(
    scores: object, train_prior: float, *, tol: float = 1e-8, max_iter: int = 10_000
) -> PriorEstimate:
    """Saerens–Latinne–Decaestecker EM estimate of the current prior (module doc)."""
    p = check_scores(scores)
    pi0 = check_prior(train_prior)
    if np.ptp(p) == 0:
        raise EarthOpsError(
            "sld_prior: every score is the same; constant scores carry no information on the prior"
        )
    pi, trace, converged = pi0, [pi0], False
    for _ in range(max_iter):
        q = adjust_posteriors(p, pi0, pi)
        new = float(q.mean())
        trace.append(new)
        if abs(new - pi) < tol:
            pi, converged = new, True
            break
        pi = new
    return PriorEstimate(
        prior=pi,
        train_prior=pi0,
        posteriors=adjust_posteriors(p, pi0, pi),
        iterations=len(trace) - 1,
        converged=converged,
        boundary=likelihood_boundary(p, pi0),
        trace=trace,
    )


def expected_confusion(posteriors: object, scores: object, threshold: float) -> ExpectedConfusion:
    """CBPE at ``threshold``: decisions ``scores ≥ threshold``, outcomes from ``posteriors``."""
    q = check_scores(posteriors, "posteriors")
    p = check_scores(scores)
    if q.shape != p.shape:
        raise EarthOpsError(f"posteriors {q.shape} and scores {p.shape} differ in shape")
    d = p >= threshold
    return ExpectedConfusion(
        threshold=float(threshold),
        tp=float(q[d].sum()),
        fp=float((1 - q[d]).sum()),
        fn=float(q[~d].sum()),
        tn=float((1 - q[~d]).sum()),
    )


def f1_optimal_threshold(posteriors: object, scores: object) -> float:
    """The score threshold maximising CBPE's F1 (``2·Σ_top-k q / (k + Σq)``; ties: highest)."""
    q = check_scores(posteriors, "posteriors")
    p = check_scores(scores)
    if q.shape != p.shape:
        raise EarthOpsError(f"posteriors {q.shape} and scores {p.shape} differ in shape")
    order = np.argsort(-p, kind="stable")
    ps, top = p[order], np.cumsum(q[order])
    # a threshold at a score keeps every tied row: evaluate k only at the last row of a tie
    last = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])
    k = last + 1
    f1 = 2 * top[last] / (k + top[-1])
    return float(ps[last[int(np.argmax(f1))]])


def realised_confusion(labels: object, scores: object, threshold: float) -> ExpectedConfusion:
    """The confusion matrix of 0/1 ``labels`` at ``threshold`` (same type as CBPE's)."""
    y = np.asarray(labels)
    if not np.isin(y, (0, 1)).all():
        raise EarthOpsError("labels: expected 0/1 values")
    return expected_confusion(y.astype(np.float64), scores, threshold)


def prior_shift_summary(
    scores: object,
    train_prior: float,
    threshold: float,
    labels: object | None = None,
) -> dict[str, object]:
    """SLD prevalence, CBPE F1 at the model's and at the adjusted threshold, and (with 0/1
    ``labels``; NaN = not known) the realised prevalence and F1 at both thresholds."""
    p = check_scores(scores)
    est = sld_prior(p, train_prior)
    adjusted = f1_optimal_threshold(est.posteriors, p)
    out: dict[str, object] = {
        "train_prevalence": est.train_prior,
        "prevalence_estimate": est.prior,
        "mean_score": float(p.mean()),
        "sld_iterations": est.iterations,
        "sld_converged": est.converged,
        "label_shift_plausible": est.label_shift_plausible,
        "model_threshold": float(threshold),
        "adjusted_threshold": adjusted,
        "estimated_f1": {
            "model_threshold": expected_confusion(est.posteriors, p, threshold).f1,
            "adjusted_threshold": expected_confusion(est.posteriors, p, adjusted).f1,
        },
        "n": int(p.size),
        "unadjusted": _unadjusted(p, threshold),
    }
    if labels is not None:
        y = np.asarray(labels, dtype=np.float64)
        if y.shape != p.shape:
            raise EarthOpsError(f"labels {y.shape} and scores {p.shape} differ in shape")
        known = np.isfinite(y)  # missing labels (no feedback yet) are left out
        if known.any():
            out.update(_realised(y[known], p[known], threshold, adjusted, out["unadjusted"]))
    return out


def _realised(
    y: np.ndarray, p: np.ndarray, threshold: float, adjusted: float, unadjusted: dict
) -> dict[str, object]:
    unadjusted["realised_f1"] = realised_confusion(y, p, unadjusted["best_threshold"]).f1
    return {
        "n_labelled": int(y.size),
        "prevalence": float(np.mean(y)),
        "realised_f1": {
            "model_threshold": realised_confusion(y, p, threshold).f1,
            "adjusted_threshold": realised_confusion(y, p, adjusted).f1,
        },
    }


def _unadjusted(p: np.ndarray, threshold: float) -> dict[str, object]:
    """CBPE on the scores as they are (NannyML's assumption: still calibrated on the current
    data, i.e. covariate shift only) and the threshold it finds F1-optimal."""
    best = f1_optimal_threshold(p, p)
    return {
        "best_threshold": best,
        "estimated_f1": {
            "model_threshold": expected_confusion(p, p, threshold).f1,
            "best_threshold": expected_confusion(p, p, best).f1,
        },
    }
