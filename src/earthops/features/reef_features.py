"""Reef-bleaching features: survey covariates → model matrix, and chips cut from gridded cubes.

Survey features (:class:`SurveyFeaturizer`, an sklearn transformer fitted on training rows only):

* heat stress and its variability: ``sst`` (Temp), ``dhw`` (SSTA_DHW, °C-weeks), ``dhw_sd``
  (TSA_DHW_Standard_Deviation), ``sst_sd`` (Temperature_Kelvin_Standard_Deviation),
  ``ssta_freq_sd`` (SSTA_Frequency_Standard_Deviation);
* ``turbidity_z``: Kd490 turbidity as a z-score **within the realm**, with the per-realm mean and
  standard deviation fitted on the training rows (realms with fewer than ``min_realm_rows``
  training rows use the pooled training statistics);
* site covariates: ``distance_to_shore_km``, ``depth_m``, ``lat``, ``abs_lat``, ``coral_cover``
  (% cover; NaN when absent — the tree models route missing values);
* one-hot ``ocean_*`` / ``realm_*`` encodings over the known vocabularies :data:`OCEANS` and
  :data:`REALMS` (the marine realms of Spalding et al. 2007, plus the survey table's Red Sea and
  Arabian Gulf).

Categories at transform time:

* a known realm that had no training rows (e.g. *Temperate Northern Atlantic* first surveyed
  after the training years) is encoded normally — its one-hot column was constant in training,
  so the model treats it like the rest — with the pooled turbidity statistics; such rows are
  counted in :attr:`SurveyFeaturizer.unseen_counts_` and logged;
* a name outside the vocabulary (a typo, another classification): ``unknown="error"`` (default)
  raises a :class:`~earthops.errors.DataError` naming the column and the expected names;
  ``unknown="category"`` encodes it as the explicit ``unknown`` category (all one-hot columns 0,
  pooled turbidity statistics), counted in :attr:`SurveyFeaturizer.unknown_counts_`.

Rows without the heat-stress inputs the model and the NOAA DHW baseline both need (``SSTA_DHW``,
``Temp``) are rejected and counted by :func:`prepare_surveys`, so model and baseline score the
same rows. Out-of-range values are errors (schema of :mod:`earthops.data.tables`).

Small frames (≤ :data:`FAST_ROWS` rows, e.g. served requests) take a fast path with the same
answers: plain numeric columns within the schema's ranges and known category names are
checked with numpy instead of pandera and featurized without per-column frame churn; any row
the fast check does not accept goes through the full pandera validation and the reference
featurizer, so bad input gives the same errors (and unseen names the same handling).

Chips (:func:`extract_chips`): ``size × size`` windows of a gridded cube (``(y, x)``,
``(band, y, x)``, or with a leading ``time``) centred on each site's cell. Cells off the grid
(poles, the edge of a regional grid) and masked cells (land) are NaN; a global grid wraps
across the antimeridian. With a ``time`` dim, each site's chip comes from the last time at or
before the site's time (never later: no lookahead).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from earthops.data.tables import SURVEY_SCHEMA, require_columns, validate_frame
from earthops.errors import DataError
from earthops.logs import get_logger

log = get_logger(__name__)

TARGET_COLUMN = "avg.bleach"
SITE_COLUMN = "Site_ID"
YEAR_COLUMN = "Date_Year"
DHW_COLUMN = "SSTA_DHW"
REALM_COLUMN = "Realm_Name"
OCEAN_COLUMN = "Ocean_Name"
LAT_COLUMN = "Latitude_Degrees"
LON_COLUMN = "Longitude_Degrees"
#: % of corals bleached at or above which a survey counts as "bleaching".
DEFAULT_BLEACH_THRESHOLD = 10.0
#: NOAA CRW rule: DHW at or above this (°C-weeks) → bleaching expected (Alert Level 1).
DHW_RULE_THRESHOLD = 4.0
UNKNOWN = "unknown"
#: known marine realms (Spalding et al. 2007 MEOW realms + the surveys' Red Sea, Arabian Gulf)
REALMS: tuple[str, ...] = (
    "Arabian Gulf",
    "Arctic",
    "Central Indo-Pacific",
    "Eastern Indo-Pacific",
    "Red Sea",
    "Southern Ocean",
    "Temperate Australasia",
    "Temperate Northern Atlantic",
    "Temperate Northern Pacific",
    "Temperate South America",
    "Temperate Southern Africa",
    "Tropical Atlantic",
    "Tropical Eastern Pacific",
    "Western Indo-Pacific",
)
OCEANS: tuple[str, ...] = ("Arctic", "Atlantic", "Indian", "Pacific", "Southern")

#: model feature → survey column (numeric, passed through)
NUMERIC_SOURCES: dict[str, str] = {
    "sst": "Temp",
    "dhw": DHW_COLUMN,
    "dhw_sd": "TSA_DHW_Standard_Deviation",
    "sst_sd": "Temperature_Kelvin_Standard_Deviation",
    "ssta_freq_sd": "SSTA_Frequency_Standard_Deviation",
    "depth_m": "Depth_m",
    "lat": LAT_COLUMN,
}
#: survey columns the featurizer reads (``Coral`` is optional)
FEATURE_COLUMNS: list[str] = [
    *NUMERIC_SOURCES.values(),
    "Distance_to_Shore",
    "Turbidity",
    OCEAN_COLUMN,
    REALM_COLUMN,
]
OPTIONAL_COLUMNS: list[str] = ["Coral"]
#: rows missing any of these are rejected (the model and the DHW baseline need them)
CORE_COLUMNS: list[str] = [DHW_COLUMN, "Temp"]
#: frames up to this many rows take the fast featurizer path (module doc); larger ones
#: (training, evaluate) always go through pandera and the reference featurizer
FAST_ROWS = 2048


# ------------------------------------------------------------------------------ target & rows
def bleaching_target(frame: pd.DataFrame, threshold: float = DEFAULT_BLEACH_THRESHOLD) -> pd.Series:
    """Binary target: ``avg.bleach ≥ threshold`` (% of corals bleached) as 0/1 int."""
    if not 0 < threshold <= 100:
        raise ValueError(f"bleaching threshold {threshold} must be in (0, 100] (% bleached)")
    return (frame[TARGET_COLUMN] >= threshold).astype(np.int64).rename("bleaching")


def dhw_rule(frame: pd.DataFrame, threshold: float = DHW_RULE_THRESHOLD) -> np.ndarray:
    """The NOAA DHW rule as 0/1: ``SSTA_DHW ≥ threshold`` °C-weeks → bleaching."""
    return (frame[DHW_COLUMN].to_numpy(dtype=np.float64) >= threshold).astype(np.float64)


@dataclass
class Rejections:
    """Rows left out of a survey table, counted by reason."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int) -> None:
        if n:
            self.counts[reason] = self.counts.get(reason, 0) + int(n)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, **self.counts}


def check_survey_features(
    frame: pd.DataFrame, source: str | Path = "<surveys>", *, labelled: bool = False
) -> pd.DataFrame:
    """Validate the columns the features (and with ``labelled`` the target) read.

    Missing columns and out-of-range or non-numeric values are a DataError naming the column;
    returns the coerced frame (extra columns kept).
    """
    needed = [*FEATURE_COLUMNS, *([TARGET_COLUMN] if labelled else [])]
    require_columns(frame, needed, source)
    present = [c for c in [*needed, *OPTIONAL_COLUMNS] if c in frame.columns]
    schema = SURVEY_SCHEMA.select_columns(present)
    return validate_frame(frame, schema, source, line_offset=None)


@functools.cache
def _schema_limits(column: str) -> tuple[float, float, bool] | None:
    """``(low, high, nullable)`` of a float column of :data:`SURVEY_SCHEMA` whose checks are
    all ``ge``/``in_range`` (inclusive), or ``None`` (not a plain float column)."""
    col = SURVEY_SCHEMA.columns.get(column)
    if col is None or str(col.dtype) != "float64" or not col.coerce:
        return None
    low, high = -np.inf, np.inf
    for check in col.checks:
        stats = dict(check.statistics or {})
        if check.name == "greater_than_or_equal_to":
            low = max(low, float(stats["min_value"]))
        elif (
            check.name == "in_range"
            and stats.get("include_min", True)
            and stats.get("include_max", True)
        ):
            low = max(low, float(stats["min_value"]))
            high = min(high, float(stats["max_value"]))
        else:
            return None
    return low, high, bool(col.nullable)


@functools.cache
def _schema_text(column: str) -> bool:
    """Whether ``column`` is a coerced ``str`` column of :data:`SURVEY_SCHEMA` whose only
    check is a minimum length of 1 (no nulls)."""
    col = SURVEY_SCHEMA.columns.get(column)
    if col is None or str(col.dtype) != "str" or not col.coerce or col.nullable:
        return False
    return [(c.name, dict(c.statistics or {})) for c in col.checks] == [
        ("str_length", {"min_value": 1, "max_value": None, "exact_value": None})
    ]


def _fast_numeric(frame: pd.DataFrame, columns: list[str]) -> np.ndarray | None:
    """``columns`` as a float64 ``(n, len(columns))`` matrix if they are plain numeric columns
    that pass their schema checks (what pandera would coerce them to), else ``None`` (let
    pandera decide)."""
    limits = [_schema_limits(c) for c in columns]
    if any(lim is None for lim in limits):
        return None
    dtypes = frame.dtypes
    if not all(isinstance(dtypes[c], np.dtype) and dtypes[c].kind in "fiu" for c in columns):
        return None
    x = frame[columns].to_numpy(dtype=np.float64)
    low = np.array([lim[0] for lim in limits])  # type: ignore[index]
    high = np.array([lim[1] for lim in limits])  # type: ignore[index]
    nullable = np.array([lim[2] for lim in limits])  # type: ignore[index]
    nan = np.isnan(x)
    ok = np.where(nan, nullable[None, :], (x >= low) & (x <= high))
    return x if bool(ok.all()) else None


def _fast_text(frame: pd.DataFrame, column: str, known: Sequence[str]) -> list[str] | None:
    """``column`` as a list of names if every value is a non-empty ``str`` in ``known``,
    else ``None`` (let pandera and the reference featurizer decide)."""
    if not _schema_text(column):
        return None
    values = frame[column].tolist()
    names = set(known)
    if all(
        type(v) is str and v in names for v in values
    ):  # exact str (a subclass: pandera decides)
        return values
    return None


def prepare_surveys(
    frame: pd.DataFrame, source: str | Path = "<surveys>", *, reject_unknown: bool = False
) -> tuple[pd.DataFrame, Rejections]:
    """Validated labelled rows ready for training/scoring, and the counted rejections.

    Rejected: exact duplicate rows, rows missing a core heat-stress input (:data:`CORE_COLUMNS`)
    and, with ``reject_unknown``, rows whose realm/ocean is outside :data:`REALMS` /
    :data:`OCEANS` (counted as ``unknown_<column>`` and logged with the names; without it such
    rows reach the featurizer, which raises or encodes them as ``unknown``).
    """
    frame = check_survey_features(frame, source, labelled=True)
    for col in (SITE_COLUMN, YEAR_COLUMN):
        if col not in frame.columns:
            raise DataError(source, f"missing required column {col}", field=col)
    rejections = Rejections()
    dup = frame.duplicated()
    rejections.add("duplicate_rows", int(dup.sum()))
    frame = frame.loc[~dup]
    for col in CORE_COLUMNS:
        missing = frame[col].isna()
        rejections.add(f"missing_{col}", int(missing.sum()))
        frame = frame.loc[~missing]
    if reject_unknown:
        for col, known in ((REALM_COLUMN, REALMS), (OCEAN_COLUMN, OCEANS)):
            unknown = ~frame[col].astype(str).isin(known)
            if unknown.any():
                names = sorted(frame.loc[unknown, col].astype(str).unique().tolist())
                log.warning("survey rows with unknown names rejected", column=col, names=names)
                rejections.add(f"unknown_{col}", int(unknown.sum()))
                frame = frame.loc[~unknown]
    if frame.empty:
        raise DataError(
            source,
            f"no usable survey rows after rejections {rejections.counts}; expected rows with "
            f"{', '.join(CORE_COLUMNS)} and known {REALM_COLUMN}/{OCEAN_COLUMN} names",
        )
    if rejections.total:
        log.info("survey rows rejected", source=str(source), **rejections.counts)
    return frame, rejections


# ------------------------------------------------------------------------------ featurizer
def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.strip().lower()).strip("_")


class SurveyFeaturizer(TransformerMixin, BaseEstimator):
    """Survey rows → numeric feature frame (see the module doc); fit on training rows only.

    Parameters
    ----------
    unknown:
        ``"error"`` (default) or ``"category"``: what a realm/ocean unseen in training does.
    min_realm_rows:
        Realms with fewer training rows standardise turbidity with the pooled statistics.
    include_lon:
        Add longitude (off by default: it lets a model memorise places rather than learn
        stress responses).
    """

    def __init__(
        self,
        unknown: Literal["error", "category"] = "error",
        min_realm_rows: int = 30,
        include_lon: bool = False,
    ) -> None:
        self.unknown = unknown
        self.min_realm_rows = min_realm_rows
        self.include_lon = include_lon

    def fit(self, X: pd.DataFrame, y: Any = None) -> SurveyFeaturizer:
        X = check_survey_features(X, "training rows")
        self.realms_ = list(REALMS)
        self.oceans_ = list(OCEANS)
        self.unknown_counts_: dict[str, int] = {}
        realm = self._check_categories(X, REALM_COLUMN, self.realms_)
        self._check_categories(X, OCEAN_COLUMN, self.oceans_)
        turb = X["Turbidity"].astype(float)
        self.trained_realms_ = sorted(set(realm.unique().tolist()) - {UNKNOWN})
        pooled = (float(turb.mean()), float(max(turb.std(ddof=0), 1e-9)))
        self.turbidity_pooled_ = pooled
        stats: dict[str, tuple[float, float]] = {}
        for name, values in turb.groupby(realm):
            if name == UNKNOWN:
                continue
            values = values.dropna()
            if len(values) >= self.min_realm_rows:
                stats[str(name)] = (float(values.mean()), float(max(values.std(ddof=0), 1e-9)))
            else:
                stats[str(name)] = pooled
        self.turbidity_stats_ = stats
        self.feature_names_ = self._names(X)
        return self

    def _names(self, X: pd.DataFrame) -> list[str]:
        names = [*NUMERIC_SOURCES, "abs_lat", "distance_to_shore_km", "turbidity_z", "coral_cover"]
        if self.include_lon:
            names.append("lon")
        names += [f"ocean_{_slug(o)}" for o in self.oceans_]
        names += [f"realm_{_slug(r)}" for r in self.realms_]
        return names

    def _check_categories(self, X: pd.DataFrame, column: str, known: list[str]) -> pd.Series:
        values = X[column].astype(str)
        unseen = ~values.isin(known)
        if unseen.any():
            names = sorted(values[unseen].unique().tolist())
            if self.unknown == "error":
                raise DataError(
                    "survey rows",
                    f"{int(unseen.sum())} row(s) with {column} {names} unseen in training; "
                    f"expected one of: {', '.join(known)} (or featurize with unknown='category')",
                    field=column,
                )
            self.unknown_counts_[column] = self.unknown_counts_.get(column, 0) + int(unseen.sum())
            log.warning("unknown category encoded as 'unknown'", column=column, values=names)
        return values.where(~unseen, UNKNOWN)

    def _count_unseen(self, realm: pd.Series) -> None:
        unseen = ~realm.isin(self.trained_realms_) & (realm != UNKNOWN)
        self.unseen_counts_ = {str(k): int(v) for k, v in realm[unseen].value_counts().items()}
        if self.unseen_counts_:
            log.info("realms without training rows (pooled turbidity stats)", **self.unseen_counts_)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "turbidity_stats_")
        if isinstance(X, pd.DataFrame) and len(X) <= FAST_ROWS:
            fast = self._transform_fast(X)
            if fast is not None:
                return fast
        return self._transform_reference(X)

    def _transform_fast(self, X: pd.DataFrame) -> pd.DataFrame | None:
        """The features of a small frame whose values the fast checks accept (module doc),
        equal to :meth:`_transform_reference`'s; ``None`` for anything else."""
        if not X.columns.is_unique or any(c not in X.columns for c in FEATURE_COLUMNS):
            return None
        if self.include_lon and LON_COLUMN not in X.columns:
            return None
        names = [*NUMERIC_SOURCES.values(), "Distance_to_Shore", "Turbidity"]
        names += [c for c in OPTIONAL_COLUMNS if c in X.columns]
        matrix64 = _fast_numeric(X, names)
        if matrix64 is None:
            return None
        numeric = {c: matrix64[:, j] for j, c in enumerate(names)}
        realm = _fast_text(X, REALM_COLUMN, self.realms_)
        ocean = _fast_text(X, OCEAN_COLUMN, self.oceans_)
        if realm is None or ocean is None:
            return None
        self.unknown_counts_ = {}
        if set(realm) - set(self.trained_realms_):
            self._count_unseen(pd.Series(realm, index=X.index, dtype=object))
        else:
            self.unseen_counts_ = {}
        n = len(X)
        cols: dict[str, np.ndarray] = {name: numeric[c] for name, c in NUMERIC_SOURCES.items()}
        cols["abs_lat"] = np.abs(cols["lat"])
        cols["distance_to_shore_km"] = numeric["Distance_to_Shore"] / 1000.0
        stats = [self.turbidity_stats_.get(r, self.turbidity_pooled_) for r in realm]
        mean = np.array([m for m, _ in stats], dtype=np.float64)
        std = np.array([s for _, s in stats], dtype=np.float64)
        cols["turbidity_z"] = (numeric["Turbidity"] - mean) / std
        cols["coral_cover"] = numeric["Coral"] if "Coral" in numeric else np.full(n, np.nan)
        if self.include_lon:
            cols["lon"] = X[LON_COLUMN].astype(float).to_numpy()
        ocean_a, realm_a = np.array(ocean, dtype=object), np.array(realm, dtype=object)
        for o in self.oceans_:
            cols[f"ocean_{_slug(o)}"] = ocean_a == o
        for r in self.realms_:
            cols[f"realm_{_slug(r)}"] = realm_a == r
        matrix = np.empty((n, len(self.feature_names_)), dtype=np.float32)
        for j, name in enumerate(self.feature_names_):
            matrix[:, j] = cols[name]  # float64 → float32 as the reference's final astype
        return pd.DataFrame(matrix, index=X.index, columns=list(self.feature_names_))

    def _transform_reference(self, X: pd.DataFrame) -> pd.DataFrame:
        """The featurizer through pandera validation, column by column (any frame)."""
        check_is_fitted(self, "turbidity_stats_")
        X = check_survey_features(X, "survey rows")
        self.unknown_counts_ = {}
        realm = self._check_categories(X, REALM_COLUMN, self.realms_)
        ocean = self._check_categories(X, OCEAN_COLUMN, self.oceans_)
        self._count_unseen(realm)
        out = pd.DataFrame(index=X.index)
        for name, col in NUMERIC_SOURCES.items():
            out[name] = X[col].astype(float)
        out["abs_lat"] = out["lat"].abs()
        out["distance_to_shore_km"] = X["Distance_to_Shore"].astype(float) / 1000.0
        mean = realm.map(lambda r: self.turbidity_stats_.get(r, self.turbidity_pooled_)[0])
        std = realm.map(lambda r: self.turbidity_stats_.get(r, self.turbidity_pooled_)[1])
        out["turbidity_z"] = (X["Turbidity"].astype(float) - mean.astype(float)) / std.astype(float)
        out["coral_cover"] = X["Coral"].astype(float) if "Coral" in X.columns else np.nan
        if self.include_lon:
            out["lon"] = X[LON_COLUMN].astype(float)
        for o in self.oceans_:
            out[f"ocean_{_slug(o)}"] = (ocean == o).astype(np.float32)
        for r in self.realms_:
            out[f"realm_{_slug(r)}"] = (realm == r).astype(np.float32)
        return out[self.feature_names_].astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "feature_names_")
        return np.asarray(self.feature_names_, dtype=object)


# ------------------------------------------------------------------------------ grids & chips
def open_grid(path: str | Path, variables: Sequence[str] | None = None) -> xr.DataArray:
    """A gridded cube from NetCDF as ``(band, y, x)`` or ``(time, band, y, x)``.

    A NOAA CRW product (``degree_heating_week`` with ``mask``) goes through
    :func:`earthops.data.rasters.read_crw_dhw` (land masked); any other NetCDF stacks
    ``variables`` (default: every data variable on the lat/lon grid) as bands.
    """
    from earthops.data.rasters import read_crw_dhw, require_file

    local = require_file(path)
    try:
        ds = xr.open_dataset(local)
    except Exception as exc:
        raise DataError(local, f"not a readable NetCDF grid ({exc})") from exc
    with ds:
        crw = {"degree_heating_week", "mask"}
        if "degree_heating_week" in ds.data_vars and set(variables or crw) <= crw:
            return read_crw_dhw(local)
        names = list(variables) if variables else [str(v) for v in ds.data_vars]
        missing = [v for v in names if v not in ds.data_vars]
        if missing:
            raise DataError(
                local, f"no variable(s) {missing}; found {list(ds.data_vars)}", field=missing[0]
            )
        ren = {
            d: n
            for d, n in (("lat", "y"), ("latitude", "y"), ("lon", "x"), ("longitude", "x"))
            if d in ds.dims
        }
        ds = ds.rename(ren)
        keep = [v for v in names if {"y", "x"} <= set(ds[v].dims)]
        if not keep:
            raise DataError(local, "no variable on a (lat, lon) grid", field="grid")
        da = xr.concat([ds[v].astype(np.float32) for v in keep], dim="band").assign_coords(
            band=keep
        )
        order = ("time", "band", "y", "x") if "time" in da.dims else ("band", "y", "x")
        return da.transpose(*order).load()


def _axis_edges(coord: np.ndarray, name: str) -> tuple[float, float]:
    values = np.asarray(coord, dtype=np.float64)
    if values.size < 2:
        raise DataError(
            "grid", f"axis '{name}' has {values.size} value(s); expected a grid", field=name
        )
    step = (values[-1] - values[0]) / (values.size - 1)
    if step == 0 or not np.allclose(np.diff(values), step, rtol=1e-3):
        raise DataError("grid", f"axis '{name}' is not regularly spaced", field=name)
    return float(values[0] - step / 2), float(step)


def _grid_4d(grid: xr.DataArray) -> xr.DataArray:
    if "y" not in grid.dims or "x" not in grid.dims:
        raise DataError("grid", f"dims {grid.dims}; expected y and x", field="grid")
    if "band" not in grid.dims:
        grid = grid.expand_dims(band=[str(grid.name or "band")])
    if "time" not in grid.dims:
        grid = grid.expand_dims(time=[grid.coords["time"].values] if "time" in grid.coords else [0])
    extra = set(grid.dims) - {"time", "band", "y", "x"}
    if extra:
        raise DataError(
            "grid", f"unexpected dims {sorted(extra)}; expected (time, band, y, x)", field="grid"
        )
    return grid.transpose("time", "band", "y", "x")


def extract_chips(
    grid: xr.DataArray,
    lat: Sequence[float] | np.ndarray,
    lon: Sequence[float] | np.ndarray,
    *,
    size: int = 16,
    times: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """``(n, bands, size, size)`` float32 chips of ``grid`` centred on each (lat, lon) site.

    The site's cell sits at index ``size // 2`` of each chip. NaN: masked cells, cells off the
    grid, and every cell of a site outside the grid or before the cube's first time. ``times``
    (required when the grid has several times) picks, per site, the last grid time ≤ that time;
    a single dated field (one CRW DHW day) is likewise never used for an earlier site time.
    """
    if size < 1:
        raise ValueError(f"chip size {size} must be ≥ 1")
    lat = np.asarray(lat, dtype=np.float64).ravel()
    lon = np.asarray(lon, dtype=np.float64).ravel()
    if lat.shape != lon.shape:
        raise ValueError(f"{lat.size} latitudes for {lon.size} longitudes")
    g = _grid_4d(grid)
    nt, _nb, ny, nx = g.shape
    y0, dy = _axis_edges(g["y"].values, "y")
    x0, dx = _axis_edges(g["x"].values, "x")
    global_x = abs(abs(dx) * nx - 360.0) < abs(dx) / 2
    n = lat.size
    dated = "time" in grid.coords and np.issubdtype(g["time"].dtype, np.datetime64)
    if nt == 1 and (times is None or not dated):
        t_idx = np.zeros(n, dtype=np.int64)  # a static grid (or no site times): one field
        t_ok = np.ones(n, dtype=bool)
    else:
        if times is None:
            raise ValueError(f"the grid has {nt} times; pass `times` to pick each site's chip")
        grid_times = g["time"].values
        site_times = np.asarray(times).astype(grid_times.dtype).ravel()
        if site_times.size != n:
            raise ValueError(f"{site_times.size} times for {n} sites")
        order = np.argsort(grid_times)
        pos = np.searchsorted(grid_times[order], site_times, side="right") - 1
        t_ok = pos >= 0
        t_idx = order[np.clip(pos, 0, None)]
    if global_x:
        lon = (lon - x0) % 360.0 + x0 if dx > 0 else lon
    row = np.floor((lat - y0) / dy).astype(np.int64)
    col = np.floor((lon - x0) / dx).astype(np.int64)
    offsets = np.arange(size) - size // 2
    rows = row[:, None] + offsets[None, :]
    cols = col[:, None] + offsets[None, :]
    if global_x:
        cols = np.mod(cols, nx)
    row_ok = (rows >= 0) & (rows < ny)
    col_ok = (cols >= 0) & (cols < nx)
    site_ok = np.isfinite(lat) & np.isfinite(lon) & t_ok
    rows_c = np.clip(rows, 0, ny - 1)
    cols_c = np.clip(cols, 0, nx - 1)
    picked = g.isel(
        time=xr.DataArray(t_idx, dims="site"),
        y=xr.DataArray(rows_c, dims=("site", "cy")),
        x=xr.DataArray(cols_c, dims=("site", "cx")),
    ).transpose("site", "band", "cy", "cx")
    chips = np.asarray(picked.values, dtype=np.float32).copy()
    valid = row_ok[:, :, None] & col_ok[:, None, :] & site_ok[:, None, None]
    chips[~np.broadcast_to(valid[:, None, :, :], chips.shape)] = np.nan
    off = int((~site_ok).sum())
    if off:
        log.warning("sites without a chip (outside the grid or before its first time)", count=off)
    return chips


class ChipScaler(BaseEstimator):
    """Per-band standardisation of chips fitted on training chips; NaN → 0 plus a validity band."""

    def fit(self, chips: np.ndarray, y: Any = None) -> ChipScaler:
        bands = np.moveaxis(np.asarray(chips, dtype=np.float64), 1, 0).reshape(chips.shape[1], -1)
        self.mean_ = (
            np.nan_to_num(np.nanmean(bands, axis=1))
            if np.isfinite(bands).any()
            else np.zeros(chips.shape[1])
        )
        std = np.nanstd(bands, axis=1) if np.isfinite(bands).any() else np.ones(chips.shape[1])
        self.std_ = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
        return self

    def transform(self, chips: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "mean_")
        chips = np.asarray(chips, dtype=np.float32)
        valid = np.isfinite(chips).all(axis=1, keepdims=True)
        scaled = (chips - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]
        scaled = np.where(np.isfinite(scaled), scaled, 0.0)
        return np.concatenate([scaled, valid.astype(np.float32)], axis=1).astype(np.float32)
