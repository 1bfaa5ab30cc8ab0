"""Map inference: the chosen ``landcover-global`` model vs sklearn RandomForest ``predict``.

Both models are trained on the same class-balanced igbp7 sample of a real feature grid
(MCD12C1 labels; Blue Marble + Köppen features over Africa + Europe, a lean grid so the
benchmark builds it in seconds). Measured in the same run on the same pixels:

* chosen model: ``GlobalLandCover.predict_raster`` end to end — features read from the grid
  cache, class labels, the outside gate ("other land", :mod:`.outside`), the COG written
  (palette, overviews) — px/s;
* baseline: sklearn ``RandomForestClassifier.predict`` with the baseline's settings
  (300 trees, 2 jobs) on the already-assembled feature matrix of those pixels — px/s.

The ratio is chosen / baseline (> 1: the map is faster than bare RF prediction). An igbp7
map's class model skips the land the gate calls "other land" (about 45 % of these pixels,
most of the Sahara), so part of that ratio is work the map no longer does; the labels-only
line below is the class model alone on every pixel. The map's
labels are also checked against the chosen model's own library ``predict_proba`` (LightGBM's,
not the compiled trees of :mod:`earthops.models.compiled_trees`) on every 10th pixel.
Also printed: labels only (no reads, no COG) of the same model with the balanced and with the
prior-corrected (``decision='area'``) rule, the latter checked against LightGBM's weighted
probabilities.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sklearn.ensemble import RandomForestClassifier

from earthops.features.global_grid import GridSpec, load_feature_grid
from earthops.raster.cog import validate_cog
from earthops.usecases import get_usecase
from earthops.usecases.base import TrainOptions
from earthops.usecases.landcover_global import _LGBM, _RF, OUTSIDE, read_labels, sample_pixels

REGION = [-20.0, -35.0, 60.0, 40.0]
GRID = {"region": REGION, "windows": [5, 15, 31], "water_windows": [15, 61]}
DECIMATE = 2


@pytest.mark.slow
def test_map_inference_vs_random_forest_predict(tmp_path: Path) -> None:
    usecase = get_usecase("landcover-global")
    params = {
        "grid": GRID,
        "models": ["rf", "lightgbm"],
        "n_per_class": 1000,
        "n_folds": 3,
        "rf_params": {"n_estimators": 50},  # the CV baseline only; the map model is LightGBM
        "lgbm_params": dict(_LGBM),
    }
    metrics = usecase.train(TrainOptions(protocol="igbp7", params=params))
    chosen = metrics["selected_model"]

    out = tmp_path / "igbp_map.tif"
    start = time.perf_counter()
    usecase.predict_raster(metrics["model_uri"], [], out, decimate=DECIMATE)
    map_s = time.perf_counter() - start
    assert validate_cog(out).is_valid
    with rasterio.open(out) as ds:
        n_px = ds.width * ds.height
        mapped = ds.read(1)

    # baseline: the reference pipeline's model on the same pixels
    spec = GridSpec.model_validate(GRID)
    grid = load_feature_grid(spec)
    labels = read_labels()
    from earthops.usecases.base import BBox

    rows, cols = sample_pixels(labels, range(7), 1000, seed=42, include=[BBox(*REGION)])
    rf = RandomForestClassifier(**{**_RF, "n_jobs": 2, "random_state": 42})
    rf.fit(grid.values(rows, cols), labels[rows, cols])
    r0, r1, c0, c1 = spec.window()
    map_rows = np.arange(r0 + DECIMATE // 2, r1, DECIMATE)
    map_cols = np.arange(c0 + DECIMATE // 2, c1, DECIMATE)
    assert map_rows.size * map_cols.size == n_px
    features = np.concatenate(
        [grid.block(map_rows[i : i + 256], map_cols) for i in range(0, map_rows.size, 256)]
    )
    start = time.perf_counter()
    rf_pred = rf.predict(features)
    rf_s = time.perf_counter() - start

    # the map is exactly the chosen model's own labels (library predict, not the fast path),
    # "other land" where the outside gate's own LightGBM says so
    from earthops.registry.tracking import load_model

    model = load_model(metrics["model_uri"])
    member = (model.members or {}).get(chosen)
    every = slice(None, None, 10)
    if member is not None:
        library = member.estimator_.predict_proba(features[every])
        own = member.classes_[np.argmax(library, axis=1)]
    else:  # a stacked model
        own = model.classes_[np.argmax(model.proba_arrays(features[every]), axis=1)]
    on_land = features[every][:, grid.feature_names.index("koppen")] > 0
    p_outside = model.outside_gate.estimator_.predict_proba(features[every])[:, 1]
    gate_says = p_outside > model.gate_threshold
    np.testing.assert_array_equal(
        mapped.ravel()[every], np.where(on_land & gate_says, OUTSIDE, own)
    )
    start = time.perf_counter()
    outside = model.outside_arrays(features)
    gate_s = time.perf_counter() - start
    np.testing.assert_array_equal(outside, mapped.ravel() == OUTSIDE)

    # the prior-corrected (decision="area") labels of the same model: a log offset per class
    # on the early-stopping path, so they should cost about what the plain labels cost
    model.decision = "area"
    start = time.perf_counter()
    area_labels = model.predict_arrays(features)
    area_s = time.perf_counter() - start
    model.decision = "balanced"
    start = time.perf_counter()
    plain_labels = model.predict_arrays(features)
    plain_s = time.perf_counter() - start
    np.testing.assert_array_equal(plain_labels[~outside], mapped.ravel()[~outside])
    if member is not None:
        weighted = (
            library
            * np.asarray(model.prior_shift)[np.searchsorted(model.classes_, member.classes_)]
        )
        np.testing.assert_array_equal(area_labels[every], member.classes_[np.argmax(weighted, 1)])

    agreement = float(np.mean(rf_pred == plain_labels))
    rate, rf_rate = n_px / map_s, n_px / rf_s
    print(
        f"\nlandcover-global map inference, {n_px} px ({map_cols.size}x{map_rows.size}), "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n"
        f"  chosen model ({chosen}), predict_raster end to end: {rate / 1e3:.0f} kpx/s "
        f"({map_s:.1f} s)\n"
        f"  sklearn RandomForest.predict ({_RF['n_estimators']} trees) on the same pixels: "
        f"{rf_rate / 1e3:.0f} kpx/s ({rf_s:.1f} s)\n"
        f"  ratio: {rate / rf_rate:.2f}x; class-label agreement with RF {agreement:.2f}\n"
        f"  of which the outside gate: {n_px / gate_s / 1e3:.0f} kpx/s ({gate_s:.2f} s); "
        f"{outside.mean():.1%} of the pixels are other land\n"
        f"  labels only (no feature reads, no COG): balanced decision {n_px / plain_s / 1e3:.0f}"
        f" kpx/s, prior-corrected (area) decision {n_px / area_s / 1e3:.0f} kpx/s "
        f"({plain_s / area_s:.2f}x; {np.mean(area_labels != plain_labels):.1%} of labels change)"
    )
    assert agreement > 0.5  # both are real classifiers of the same scene
