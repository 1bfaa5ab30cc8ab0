"""Model selection on out-of-fold predictions, its selection-aware estimate, and the
stacking meta-learner fitted on those predictions.

``oof`` maps a candidate name to its out-of-fold class probabilities (columns = ``classes``).
Candidates named in ``singles`` are single models; any other key is an ensemble (stacking,
voting) that is chosen only when it beats the best single model by ``min_gain``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def choose_candidate(
    oof: dict[str, np.ndarray],
    y: np.ndarray,
    mask: np.ndarray,
    singles: Sequence[str],
    min_gain: float,
    classes: Sequence[object] | None = None,
) -> str:
    """The single model with the best OOF macro F1 on the rows in ``mask``, or an ensemble
    (in ``oof``'s order) when it beats that model by ``min_gain`` and any earlier pick.

    ``classes``: the probability columns' labels (default: the sorted labels of ``y``).
    """
    labels = np.unique(y) if classes is None else np.asarray(classes)

    def score(kind: str) -> float:
        pred = labels[np.argmax(oof[kind][mask], axis=1)]
        return float(f1_score(y[mask], pred, average="macro", zero_division=0))

    scores = {kind: score(kind) for kind in oof}
    best = max(singles, key=lambda k: scores[k])
    selected = best
    for combo in (k for k in oof if k not in singles):
        if scores[combo] >= max(scores[selected], scores[best] + min_gain):
            selected = combo
    return selected


def selection_aware_proba(
    oof: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    singles: Sequence[str],
    min_gain: float,
    classes: Sequence[object] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Probabilities where fold ``k`` comes from the candidate chosen on the other folds only.

    The model choice never sees the labels of the fold it is scored on, so pooled figures
    carry no selection optimism. Returns the probabilities and the choice per fold.
    """
    proba = np.zeros_like(next(iter(oof.values())), dtype=np.float64)
    choices = []
    for k in range(int(folds.max()) + 1):
        test = folds == k
        choice = choose_candidate(oof, y, ~test, singles, min_gain, classes)
        choices.append(choice)
        proba[test] = oof[choice][test]
    return proba, choices


def log_probs(probas: Sequence[np.ndarray]) -> np.ndarray:
    """The stacker's input: the members' probabilities side by side, as clipped logs."""
    return np.log(np.clip(np.concatenate(probas, axis=1), 1e-4, 1.0))


def make_stacker(max_iter: int = 500, seed: int | None = None) -> Pipeline:
    """Logistic regression on standardised member log-probabilities (converges, unlike raw)."""
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=1.0, max_iter=max_iter, random_state=seed)
    )
