"""Raster feature stacks: spectral indices, neighbourhood statistics and GLCM texture.

A :class:`FeatureSpec` (YAML/JSON for ``earthops features raster --spec``) says what to compute;
:func:`compute_stack` builds a lazy dask graph with ``map_overlap`` whose tiles carry a NaN halo
of ``spec.halo()`` pixels, so the tiled result equals the whole-array result exactly (the
kernels treat NaN and "outside the array" alike) and memory stays bounded by a few tiles.
:func:`write_stack` streams it into a COG; :func:`features_raster` is the CLI's entry point.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dask
import dask.array as dsa
import numpy as np
import rasterio
import rioxarray
import xarray as xr
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rasterio.errors import NotGeoreferencedWarning

from earthops.errors import DataError
from earthops.features.glcm import DEFAULT_PROPS, PROPS, glcm_texture, quantize
from earthops.features.kernels import (
    INDEX_BANDS,
    STATS,
    available_indices,
    index_array,
    window_stats,
)
from earthops.logs import get_logger
from earthops.raster.cog import write_cog

log = get_logger(__name__)

#: dataset tag of a written stack holding its FeatureSpec as JSON.
SPEC_TAG = "EARTHOPS_FEATURE_SPEC"
_READ_CHUNK = 1024


# ------------------------------------------------------------------------------------- spec
class GlcmSpec(BaseModel):
    """GLCM texture settings (scikit-image semantics, rotation- and distance-averaged)."""

    model_config = ConfigDict(extra="forbid")

    bands: list[str] | None = Field(
        default=None, description="Sources: input bands or index names; None = every band."
    )
    window: int = Field(default=7, description="Odd window side (pixels).")
    levels: int = Field(default=16, description="Grey levels, 2..255.")
    distances: list[int] = Field(default_factory=lambda: [1, 2])
    angles_deg: list[float] = Field(default_factory=lambda: [0.0, 45.0, 90.0, 135.0])
    props: list[str] = Field(default_factory=lambda: list(DEFAULT_PROPS))
    quantization: Literal["auto", "linear", "direct"] = Field(
        default="auto",
        description="linear: floor((v-min)/(max-min)*levels); direct: integer value = level; "
        "auto: direct for integer-valued sources within 0..levels-1, else linear.",
    )
    value_range: tuple[float, float] | None = Field(
        default=None, description="Linear quantisation range; None = the raster's min/max."
    )

    @field_validator("window")
    @classmethod
    def _odd_window(cls, v: int) -> int:
        if v < 3 or v % 2 == 0:
            raise ValueError(f"window must be odd and >= 3, got {v}")
        return v

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: int) -> int:
        if not 2 <= v <= 255:
            raise ValueError(f"levels must be in 2..255, got {v}")
        return v

    @field_validator("distances")
    @classmethod
    def _distances(cls, v: list[int]) -> list[int]:
        if not v or min(v) < 1:
            raise ValueError(f"distances must be a non-empty list of integers >= 1, got {v}")
        return v

    @field_validator("angles_deg")
    @classmethod
    def _angles(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("angles_deg must not be empty")
        return v

    @field_validator("props")
    @classmethod
    def _props(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in PROPS]
        if unknown or not v:
            raise ValueError(f"unknown GLCM props {unknown}; known: {', '.join(PROPS)}")
        return v

    @property
    def angles(self) -> list[float]:
        """Angles in radians (scikit-image convention)."""
        return [math.radians(a) for a in self.angles_deg]


class FeatureSpec(BaseModel):
    """What a feature stack contains. Load from YAML/JSON with :meth:`from_file`."""

    model_config = ConfigDict(extra="forbid")

    include_bands: bool = Field(default=True, description="Pass the input bands through.")
    indices: list[str] = Field(default_factory=list, description="Spectral indices to output.")
    stats: list[str] = Field(default_factory=lambda: list(STATS))
    windows: list[int] = Field(default_factory=lambda: [3, 7, 15], description="Odd sides.")
    stats_bands: list[str] | None = Field(
        default=None, description="Sources of the statistics; None = every input band."
    )
    glcm: GlcmSpec | None = None
    reflectance_scale: float | None = Field(
        default=None, description="Stored value -> reflectance (EVI/SAVI); None = scale_factor."
    )
    mask_nodata: bool = Field(
        default=True, description="Derived features are NaN where their source pixel is NaN."
    )
    chunk: int = Field(default=1024, ge=64, description="Tile side of the dask computation.")

    @field_validator("indices")
    @classmethod
    def _indices(cls, v: list[str]) -> list[str]:
        unknown = [i for i in v if i not in INDEX_BANDS]
        if unknown:
            raise ValueError(f"unknown indices {unknown}; known: {', '.join(INDEX_BANDS)}")
        return v

    @field_validator("stats")
    @classmethod
    def _stats(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in STATS]
        if unknown:
            raise ValueError(f"unknown stats {unknown}; known: {', '.join(STATS)}")
        return v

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[int]) -> list[int]:
        bad = [w for w in v if w < 1 or w % 2 == 0]
        if bad:
            raise ValueError(f"windows must be positive odd integers, got {bad}")
        return v

    @classmethod
    def from_file(cls, path: str | Path) -> FeatureSpec:
        """Read a spec from YAML or JSON; problems raise :class:`DataError` naming the file."""
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "feature spec file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise DataError(path, f"not valid YAML/JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise DataError(path, f"expected a mapping of spec fields, got {type(raw).__name__}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise DataError(path, first["msg"], field=field) from exc

    def to_file(self, path: str | Path) -> Path:
        """Write the spec as YAML (or JSON for a ``.json`` path)."""
        path = Path(path)
        data = self.model_dump(mode="json")
        text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data)
        path.write_text(text)
        return path

    def halo(self) -> int:
        """Tile overlap: the largest window radius (GLCM pairs never leave their window)."""
        radii = [w // 2 for w in self.windows] if self.stats and self.stats_bands != [] else []
        if self.glcm is not None and self.glcm.bands != []:
            radii.append(self.glcm.window // 2)
        return max(radii, default=0)

    def sources(self, band_names: Sequence[str]) -> tuple[list[str], list[str]]:
        """(statistics sources, GLCM sources) for a raster with ``band_names``."""
        bands = [str(b) for b in band_names]
        stat_src = list(bands if self.stats_bands is None else self.stats_bands)
        stat_src = stat_src if self.stats and self.windows else []
        glcm_src: list[str] = []
        if self.glcm is not None:
            glcm_src = list(bands if self.glcm.bands is None else self.glcm.bands)
        return stat_src, glcm_src

    def feature_names(self, band_names: Sequence[str]) -> list[str]:
        """Output band names, in stack order."""
        names = [str(b) for b in band_names] if self.include_bands else []
        names += list(self.indices)
        stat_src, glcm_src = self.sources(band_names)
        names += [f"{s}_{stat}_w{w}" for s in stat_src for w in self.windows for stat in self.stats]
        if self.glcm is not None:
            names += [
                f"{s}_glcm_{p.lower()}_w{self.glcm.window}"
                for s in glcm_src
                for p in self.glcm.props
            ]
        return names

    def check(self, band_names: Sequence[str], source: str | Path = "feature spec") -> None:
        """Raise :class:`DataError` if the spec asks for what ``band_names`` cannot give."""
        bands = [str(b) for b in band_names]
        computable = set(available_indices(bands))
        for name in self.indices:
            if name not in computable:
                raise DataError(
                    source,
                    f"index '{name}' needs bands {list(INDEX_BANDS[name])}; raster has {bands}",
                    field="indices",
                )
        stat_src, glcm_src = self.sources(bands)
        for field, names in (("stats_bands", stat_src), ("glcm.bands", glcm_src)):
            for name in names:
                if name not in bands and name not in computable:
                    raise DataError(
                        source,
                        f"'{name}' is neither a band {bands} nor a computable index "
                        f"{sorted(computable)}",
                        field=field,
                    )
        if len(set(self.feature_names(bands))) != len(self.feature_names(bands)):
            raise DataError(source, "feature names are not unique (band named like an index?)")


def band_names(da: xr.DataArray) -> list[str]:
    """The raster's band names as strings (the ``band`` coordinate)."""
    return [str(b) for b in da["band"].values]


def _is_integer_raster(da: xr.DataArray) -> bool:
    kinds = [np.dtype(da.dtype)]
    for key in ("rasterio_dtype", "dtype"):
        if key in da.encoding:
            kinds.append(np.dtype(da.encoding[key]))
    return any(np.issubdtype(k, np.integer) for k in kinds)


def default_spec_for(da: xr.DataArray) -> FeatureSpec:
    """A sensible default spec for any ``(band, y, x)`` raster.

    * one integer band (a categorical map such as MCD12C1): statistics over 3/7/15 windows and
      GLCM texture on that band with 32 levels (classes map to levels directly when they fit);
    * bands that allow spectral indices: every such index; statistics and GLCM on NDVI (else
      brightness, else the first index);
    * anything else: statistics and GLCM (16 levels, linear) on every band.
    """
    names = band_names(da)
    indices = available_indices(names)
    if len(names) == 1 and _is_integer_raster(da):
        return FeatureSpec(glcm=GlcmSpec(levels=32, quantization="auto"))
    if indices:
        primary = next((p for p in ("ndvi", "brightness") if p in indices), indices[0])
        return FeatureSpec(
            indices=indices, stats_bands=[primary], glcm=GlcmSpec(bands=[primary], levels=16)
        )
    return FeatureSpec(glcm=GlcmSpec(levels=16))


# ------------------------------------------------------------------------------- computation
@dataclass(frozen=True)
class _Glcm:
    source: str
    levels: int
    direct: bool
    vmin: float
    vmax: float


@dataclass(frozen=True)
class _Plan:
    bands: tuple[str, ...]
    depth: int
    scale: float
    include_bands: bool
    indices: tuple[str, ...]
    derived: tuple[str, ...]  # indices computed (output or used as sources)
    stat_sources: tuple[str, ...]
    windows: tuple[int, ...]
    stats: tuple[str, ...]
    glcm: tuple[_Glcm, ...]
    window: int
    distances: tuple[int, ...]
    angles: tuple[float, ...]
    props: tuple[str, ...]
    mask_nodata: bool
    nfeat: int


def _block(block: np.ndarray, plan: _Plan) -> np.ndarray:
    """Features of one halo-padded tile ``(band, y + 2 halo, x + 2 halo)`` -> interior only."""
    d = plan.depth
    h, w = block.shape[1] - 2 * d, block.shape[2] - 2 * d
    inner = (slice(d, d + h), slice(d, d + w))
    src: dict[str, np.ndarray] = {
        b: np.ascontiguousarray(block[i], dtype=np.float32) for i, b in enumerate(plan.bands)
    }
    for name in plan.derived:
        src[name] = index_array(name, src, scale=plan.scale, parallel=False)
    out = np.empty((plan.nfeat, h, w), dtype=np.float32)
    k = 0
    direct = (plan.bands if plan.include_bands else ()) + plan.indices
    for name in direct:
        out[k] = src[name][inner]
        k += 1
    for name in plan.stat_sources:
        start = k
        for win in plan.windows:
            n = len(plan.stats)
            out[k : k + n] = window_stats(src[name], win, plan.stats, margin=d, parallel=False)
            k += n
        if plan.mask_nodata:
            out[start:k, np.isnan(src[name][inner])] = np.nan
    for g in plan.glcm:
        q = quantize(src[g.source], g.levels, g.vmin, g.vmax, direct=g.direct, parallel=False)
        n = len(plan.props)
        out[k : k + n] = glcm_texture(
            q,
            g.levels,
            plan.window,
            plan.distances,
            plan.angles,
            plan.props,
            margin=d,
            parallel=False,
        )
        if plan.mask_nodata:
            out[k : k + n, np.isnan(src[g.source][inner])] = np.nan
        k += n
    return out


def _chunks(size: int, chunk: int, minimum: int) -> tuple[int, ...]:
    """Regular chunks of ``chunk``; a last chunk smaller than ``minimum`` joins its neighbour."""
    sizes = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    if len(sizes) > 1 and sizes[-1] < minimum:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def _source_array(arr: dsa.Array, bands: list[str], name: str, scale: float) -> dsa.Array:
    if name in bands:
        return arr[bands.index(name)]
    need = [bands.index(b) for b in INDEX_BANDS[name]]
    return arr[need].map_blocks(
        lambda blk: index_array(
            name, dict(zip(INDEX_BANDS[name], blk, strict=True)), scale=scale, parallel=False
        ),
        drop_axis=0,
        dtype=np.float32,
    )


def _glcm_plan(
    arr: dsa.Array, bands: list[str], spec: FeatureSpec, scale: float
) -> tuple[_Glcm, ...]:
    """Quantisation of every GLCM source, from global statistics (one lazy pass)."""
    g = spec.glcm
    if g is None:
        return ()
    _, sources = spec.sources(bands)
    lazy = {}
    for name in sources:
        x = _source_array(arr, bands, name, scale)
        frac = dsa.where(dsa.isnan(x), 0.0, x - dsa.floor(x))
        lazy[name] = (dsa.nanmin(x), dsa.nanmax(x), dsa.nanmax(dsa.abs(frac)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN sources
        (computed,) = dask.compute(lazy)
    plans = []
    for name in sources:
        lo, hi, frac = (float(v) for v in computed[name])
        lo, hi = (0.0, 0.0) if math.isnan(lo) else (lo, hi)
        integral = frac == 0.0 and lo >= 0.0 and hi < g.levels
        direct = g.quantization == "direct" or (
            g.quantization == "auto" and integral and g.value_range is None
        )
        vmin, vmax = g.value_range if g.value_range is not None else (lo, hi)
        plans.append(_Glcm(name, g.levels, direct, float(vmin), float(vmax)))
        log.debug("glcm.quantisation", source=name, direct=direct, vmin=vmin, vmax=vmax)
    return tuple(plans)


def compute_stack(da: xr.DataArray, spec: FeatureSpec | None = None) -> xr.DataArray:
    """The lazy feature stack ``(band=feature names, y, x)`` float32 of a ``(band, y, x)`` raster.

    Nodata (the raster's rioxarray nodata, or NaN) is missing data for every kernel. GLCM
    quantisation ranges are global (computed eagerly in one pass when not given), so the
    result does not depend on the tiling.
    """
    if tuple(da.dims) != ("band", "y", "x"):
        raise DataError("raster", f"expected dims (band, y, x), got {da.dims}")
    spec = spec or default_spec_for(da)
    bands = band_names(da)
    spec.check(bands)
    stat_src, _ = spec.sources(bands)
    g = spec.glcm
    glcm_src = spec.sources(bands)[1]
    scale = float(spec.reflectance_scale or da.attrs.get("scale_factor", 1.0) or 1.0)
    depth = spec.halo()

    arr = da.data if isinstance(da.data, dsa.Array) else dsa.from_array(np.asarray(da.data))
    arr = arr.astype(np.float32)
    nodata = da.rio.nodata
    if nodata is not None and not np.isnan(nodata):
        arr = dsa.where(arr == np.float32(nodata), np.float32(np.nan), arr)
    ny, nx = arr.shape[1:]
    arr = arr.rechunk((-1, _chunks(ny, spec.chunk, depth), _chunks(nx, spec.chunk, depth)))

    derived = [i for i in INDEX_BANDS if i in spec.indices or i in (*stat_src, *glcm_src)]
    derived = [i for i in derived if i not in bands]
    names = spec.feature_names(bands)
    plan = _Plan(
        bands=tuple(bands),
        depth=depth,
        scale=scale,
        include_bands=spec.include_bands,
        indices=tuple(spec.indices),
        derived=tuple(derived),
        stat_sources=tuple(stat_src),
        windows=tuple(spec.windows),
        stats=tuple(spec.stats),
        glcm=_glcm_plan(arr, bands, spec, scale),
        window=g.window if g else 1,
        distances=tuple(g.distances) if g else (),
        angles=tuple(g.angles) if g else (),
        props=tuple(g.props) if g else (),
        mask_nodata=spec.mask_nodata,
        nfeat=len(names),
    )
    data = dsa.map_overlap(
        _block,
        arr,
        depth={0: 0, 1: depth, 2: depth},
        boundary={0: "none", 1: np.nan, 2: np.nan},
        trim=False,
        dtype=np.float32,
        chunks=((len(names),), arr.chunks[1], arr.chunks[2]),
        meta=np.empty((0, 0, 0), dtype=np.float32),
        plan=plan,
    )
    coords = {k: v for k, v in da.coords.items() if "band" not in v.dims}
    out = xr.DataArray(data, dims=("band", "y", "x"), coords={**coords, "band": names})
    out.attrs = {"long_name": tuple(names), SPEC_TAG: spec.model_dump_json()}
    if da.rio.crs is not None:
        out = out.rio.write_crs(da.rio.crs)
    out = out.rio.write_nodata(np.nan, encoded=False)
    log.info(
        "features.stack",
        features=len(names),
        shape=list(da.shape[1:]),
        halo=depth,
        chunk=spec.chunk,
    )
    return out


def write_stack(
    stack: xr.DataArray,
    path: str | Path,
    *,
    profile: str = "zstd",
    level: int | None = 1,
    overview_resampling: str = "average",
) -> Path:
    """Write a feature stack as a COG: band descriptions = feature names, spec in the tags.

    ZSTD level 1 (with the floating-point predictor) by default: on feature stacks it is about
    3x faster than deflate level 1 at a slightly smaller size, and the write dominates the run
    time of a large stack. Any GDAL >= 2.3 reads it; ``profile="deflate"`` for older readers.
    """
    tags = {SPEC_TAG: stack.attrs[SPEC_TAG]} if SPEC_TAG in stack.attrs else None
    return write_cog(
        stack.astype(np.float32),
        path,
        profile=profile,
        level=level,
        descriptions=band_names(stack),
        tags=tags,
        overview_resampling=overview_resampling,
    )


# ------------------------------------------------------------------------------ file inputs
def _input_band_names(path: Path, da: xr.DataArray) -> list[str]:
    long_name = da.attrs.get("long_name")
    if isinstance(long_name, str):
        long_name = (long_name,)
    if long_name and len(long_name) == da.sizes["band"] and all(long_name):
        return [str(n).strip().lower() for n in long_name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            interp = [ci.name for ci in src.colorinterp]
    if set(interp) <= {"red", "green", "blue", "alpha"} and len(set(interp)) == len(interp):
        return interp
    return [f"b{i}" for i in range(1, da.sizes["band"] + 1)]


def open_input(path: str | Path, chunk: int = _READ_CHUNK) -> xr.DataArray:
    """Open a raster lazily (nodata masked to NaN) with band names from descriptions/colours."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "input raster not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            da = rioxarray.open_rasterio(
                path, chunks={"band": -1, "y": chunk, "x": chunk}, masked=True
            )
    except Exception as exc:
        raise DataError(path, f"cannot read raster ({type(exc).__name__}: {exc})") from exc
    if isinstance(da, list | xr.Dataset):
        raise DataError(path, "expected a single raster, found subdatasets")
    return da.assign_coords(band=_input_band_names(path, da))


def _same_grid(first: xr.DataArray, other: xr.DataArray, first_path: Path, path: Path) -> None:
    if first.shape[1:] != other.shape[1:]:
        raise DataError(
            path,
            f"grid mismatch with {first_path.name}: shape {other.shape[1:]} "
            f"vs {first.shape[1:]} (y, x)",
        )
    if first.rio.crs != other.rio.crs:
        raise DataError(
            path, f"grid mismatch with {first_path.name}: CRS {other.rio.crs} vs {first.rio.crs}"
        )
    t0, t1 = first.rio.transform(), other.rio.transform()
    if not t0.almost_equals(t1, precision=1e-9 * max(1.0, abs(t0.a), abs(t0.e))):
        raise DataError(
            path,
            f"grid mismatch with {first_path.name}: transform {tuple(t1)[:6]} vs {tuple(t0)[:6]}",
        )


def stack_inputs(inputs: Sequence[str | Path]) -> xr.DataArray:
    """Open one or more rasters on the same grid as one ``(band, y, x)`` array."""
    if not inputs:
        raise DataError("--input", "at least one input raster is required")
    paths = [Path(p) for p in inputs]
    arrays = [open_input(p) for p in paths]
    for path, da in zip(paths[1:], arrays[1:], strict=True):
        _same_grid(arrays[0], da, paths[0], path)
    if len(arrays) == 1:
        return arrays[0]
    names = [band_names(a) for a in arrays]
    flat = [n for ns in names for n in ns]
    renamed = []
    for k, (da, ns) in enumerate(zip(arrays, names, strict=True)):
        unique = [n if flat.count(n) == 1 else f"in{k + 1}_{n}" for n in ns]
        renamed.append(da.assign_coords(band=unique))
    da = xr.concat(renamed, dim="band", join="override", combine_attrs="drop_conflicts")
    return da.rio.write_crs(arrays[0].rio.crs) if arrays[0].rio.crs else da


def features_raster(
    inputs: Sequence[str | Path], output: str | Path, spec: Path | None = None
) -> Path:
    """``earthops features raster``: inputs (same grid) -> feature-stack COG at ``output``."""
    da = stack_inputs(inputs)
    spec_obj = FeatureSpec.from_file(spec) if spec is not None else default_spec_for(da)
    spec_obj.check(band_names(da), source=spec if spec is not None else Path(inputs[0]))
    stack = compute_stack(da, spec_obj)
    return write_stack(stack, output)
