"""Reef risk heat-map on the real NOAA CRW DHW grid (COG + PNG), chips cut from that grid, and
bad NetCDF input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from earthops.errors import DataError, EarthOpsError
from earthops.features.reef_features import extract_chips, open_grid, prepare_surveys
from earthops.features.thermal import ALERT_LEVEL_NAMES, alert_level_from_dhw
from earthops.raster.cog import read_class_names, validate_cog
from earthops.registry.card import ModelCard
from earthops.usecases.reef import (
    ALERT_NODATA,
    NAME,
    DhwGridModel,
    ReefBleaching,
    ReefRiskModel,
    risk_heatmap,
)

CRW = "reef/ct5km_dhw_v3.1_20210619.nc"
#: Bay of Bengal / Andaman Sea: land (India, Myanmar) and heat stress up to Alert Level 2 in June 2021
REGION = {"lat": slice(25.0, 10.0), "lon": slice(80.0, 100.0)}


@pytest.fixture(scope="module")
def crw_path() -> Path:
    from conftest import MIRROR

    path = MIRROR / CRW
    if not path.is_file():
        pytest.skip(f"CRW DHW product not found at {path}")
    return path


@pytest.fixture(scope="module")
def crw_region(crw_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real CRW NetCDF cropped to :data:`REGION` (same variables, encodings and mask)."""
    out = tmp_path_factory.mktemp("crw") / "ct5km_dhw_bengal.nc"
    with xr.open_dataset(crw_path) as ds:
        ds.sel(**REGION).to_netcdf(out)
    return out


@pytest.fixture(scope="module")
def reef_model() -> ReefRiskModel:
    """A reef model whose DHW grid model is fitted on the real survey table (the part the
    heat-map uses)."""
    from earthops.data.tables import read_bleaching_surveys
    from earthops.features.reef_features import bleaching_target

    rows, _ = prepare_surveys(read_bleaching_surveys())
    model = ReefRiskModel()
    model.grid_model_ = DhwGridModel(n_estimators=40).fit(rows, bleaching_target(rows).to_numpy())
    return model


def _png_is_a_picture(path: Path) -> None:
    import matplotlib.image as mpimg

    assert path.is_file() and path.stat().st_size > 20_000
    image = mpimg.imread(path)
    colours = np.unique(image[..., :3].reshape(-1, 3).round(2), axis=0)
    assert image.shape[0] > 400 and image.shape[1] > 800 and len(colours) > 20


# ------------------------------------------------------------------------------ heat-maps
def test_alert_heatmap_on_the_full_real_grid(crw_path: Path, tmp_path: Path) -> None:
    result = risk_heatmap(tmp_path / "alert.tif")
    assert result.mode == "alert" and validate_cog(result.cog).is_valid
    _png_is_a_picture(result.png)
    assert read_class_names(result.cog)[7] == ALERT_LEVEL_NAMES[7]
    with xr.open_dataset(crw_path) as ds:
        dhw = ds["degree_heating_week"].isel(time=0).values
        water = ds["mask"].values == 0
    with rasterio.open(result.cog) as src:
        assert (src.width, src.height, src.count) == (7200, 3600, 1)
        assert src.nodata == ALERT_NODATA and src.colormap(1)[3][:3] == (240, 0, 0)
        levels = src.read(1)
    assert (levels[~water] == ALERT_NODATA).all()  # land, ice: nodata
    want = alert_level_from_dhw(np.where(water, dhw, np.nan))
    np.testing.assert_array_equal(levels[water], want[water].astype(np.uint8))
    assert {0, 2, 3, 4} <= set(np.unique(levels[water]).tolist())


def test_model_heatmap_risk_rises_with_dhw_and_land_is_nodata(
    crw_region: Path, reef_model: ReefRiskModel, tmp_path: Path
) -> None:
    out = tmp_path / "risk.tif"
    result = risk_heatmap(
        out, dhw=crw_region, model=reef_model, with_alert_band=True, block_rows=64
    )
    assert result.mode == "model" and validate_cog(out).is_valid
    _png_is_a_picture(result.png)
    with xr.open_dataset(crw_region) as ds:
        dhw = ds["degree_heating_week"].isel(time=0).values
        water = ds["mask"].values == 0
    with rasterio.open(out) as src:
        assert src.descriptions == ("bleaching_risk", "crw_alert_level")
        risk, alert = src.read(1), src.read(2)
    assert np.isnan(risk[~water]).all() and np.isnan(alert[~water]).all()
    assert np.isfinite(risk[water]).all() and ((risk[water] >= 0) & (risk[water] <= 1)).all()
    order = np.argsort(dhw[water], kind="stable")
    assert (np.diff(risk[water][order]) >= -1e-6).all()  # monotone in DHW
    assert risk[water][dhw[water] >= 8].min() > risk[water][dhw[water] == 0].max()


def test_predict_raster_with_a_logged_model(
    crw_region: Path, reef_model: ReefRiskModel, tmp_path: Path
) -> None:
    from earthops.registry.tracking import log_model, training_run

    example = pd.DataFrame({"SSTA_DHW": [0.0, 4.0, 9.0]})
    with training_run(NAME):
        uri = log_model(
            reef_model,
            example,
            card=ModelCard(usecase=NAME, task="binary", input_columns=["SSTA_DHW"], classes=[0, 1]),
            output_example=reef_model.grid_model_.predict_proba(example)[:, 1],
            metadata={"usecase": NAME},
        )
    out = ReefBleaching().predict_raster(uri, [crw_region], tmp_path / "reef_risk.tif")
    assert validate_cog(out).is_valid and out.with_suffix(".png").is_file()
    with rasterio.open(out) as src:
        assert src.count == 1 and src.descriptions == ("bleaching_risk",)
    with pytest.raises(EarthOpsError, match="expected one CRW DHW NetCDF"):
        ReefBleaching().predict_raster(uri, [crw_region, crw_region], tmp_path / "x.tif")


def test_netcdf_without_the_dhw_variable_is_a_data_error(crw_region: Path, tmp_path: Path) -> None:
    no_dhw = tmp_path / "sst_only.nc"
    with xr.open_dataset(crw_region) as ds:
        ds.rename({"degree_heating_week": "analysed_sst"}).to_netcdf(no_dhw)
    with pytest.raises(DataError) as err:
        risk_heatmap(tmp_path / "x.tif", dhw=no_dhw)
    assert err.value.field == "degree_heating_week" and "analysed_sst" in str(err.value)
    not_nc = tmp_path / "broken.nc"
    not_nc.write_text("not a netcdf file")
    with pytest.raises(DataError, match="broken.nc"):
        risk_heatmap(tmp_path / "y.tif", dhw=not_nc)
    with pytest.raises(EarthOpsError, match=r"expected a \.tif"):
        risk_heatmap(tmp_path / "z.png", dhw=crw_region)


# ------------------------------------------------------------------------------ chips
def test_chips_from_the_real_crw_dhw_grid(crw_path: Path) -> None:
    grid = open_grid(crw_path)
    assert grid.dims == ("band", "y", "x") and grid.shape == (1, 3600, 7200)
    lat = np.array([19.775, 23.0, 89.99, 15.01])  # Honoliʻi, Sahara (land), pole edge, Bengal
    lon = np.array([-155.075, 10.0, 179.99, 88.01])
    chips = extract_chips(grid, lat, lon, size=8)
    assert chips.shape == (4, 1, 8, 8) and chips.dtype == np.float32
    centre = grid.sel(y=lat[3], x=lon[3], method="nearest").item()
    assert chips[3, 0, 4, 4] == pytest.approx(centre) and np.isfinite(chips[3]).all()
    assert np.isnan(chips[1]).all()  # land is masked
    assert np.isfinite(chips[0]).any() and np.isnan(chips[0]).any()  # coast: sea and land
    assert np.isnan(chips[2, 0, :4]).all() and np.isfinite(chips[2, 0, 5:]).any()  # off the pole
    # the antimeridian wraps: columns right of 180° come from −180°
    wrap = grid.sel(y=lat[2], x=-179.975, method="nearest").item()
    assert chips[2, 0, 4, 5] == pytest.approx(wrap, nan_ok=True)


def test_a_dated_crw_day_is_never_a_chip_for_an_earlier_survey(crw_region: Path) -> None:
    grid = open_grid(crw_region)  # one day: 2021-06-19
    lat, lon = [15.01, 15.01], [88.01, 88.01]
    times = np.array(["2016-12-31", "2021-12-31"], dtype="datetime64[ns]")
    chips = extract_chips(grid, lat, lon, size=4, times=times)
    assert np.isnan(chips[0]).all() and np.isfinite(chips[1]).all()
    assert np.isfinite(extract_chips(grid, lat, lon, size=4)).all()  # no times: the field itself
