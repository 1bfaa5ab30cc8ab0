"""Model selection on out-of-fold predictions (``earthops.models.selection``)."""

from __future__ import annotations

import numpy as np

from earthops.models.selection import choose_candidate, selection_aware_proba


def test_selection_aware_headline_chooses_on_the_other_folds_only() -> None:
    rng = np.random.default_rng(0)
    y = np.array(["x", "y"] * 30)
    folds = np.repeat([0, 1, 2], 20)
    truth = np.stack([y == "x", y == "y"], axis=1).astype(float)
    # "a" is right on folds 1 and 2 and wrong on fold 0; "b" is right only on fold 0
    a, b = truth.copy(), 1 - truth
    a[folds == 0] = 1 - truth[folds == 0]
    b[folds == 0] = truth[folds == 0]
    oof = {"a": a, "b": b}
    proba, choices = selection_aware_proba(oof, y, folds, ("a", "b"), 0.0)
    pred = np.array(["x", "y"])[np.argmax(proba, axis=1)]
    assert choices[0] == "a"  # chosen on folds 1-2, although "b" is perfect on fold 0
    np.testing.assert_array_equal(pred[folds == 0], np.where(y == "x", "y", "x")[folds == 0])
    # the choice for fold k never depends on fold k's rows: scramble them, same choices
    for k in range(3):
        scrambled = {name: p.copy() for name, p in oof.items()}
        for p in scrambled.values():
            p[folds == k] = rng.random((20, 2))
        _, again = selection_aware_proba(scrambled, y, folds, ("a", "b"), 0.0)
        assert again[k] == choices[k]
    # ensembles need min_gain over the best single member
    oof["vote"] = (a + b) / 2 + truth * 0.01
    everywhere = np.ones(len(y), dtype=bool)
    assert choose_candidate(oof, y, everywhere, ("a", "b"), 0.0) == "vote"
    assert choose_candidate(oof, y, everywhere, ("a", "b"), 0.5) in ("a", "b")
    # explicit classes: probability columns for classes absent from y still line up
    ints = np.where(y == "x", 0, 2)
    wide = {name: np.insert(p, 1, 0.0, axis=1) for name, p in oof.items()}  # columns 0, 1, 2
    assert choose_candidate(wide, ints, everywhere, ("a", "b"), 0.0, classes=[0, 1, 2]) == "vote"
