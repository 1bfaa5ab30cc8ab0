"""Feast feature store on the real survey table: apply, materialize, online get (SQLite and a real
redis-server), point-in-time training sets without leakage, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import structlog

from earthops import devservices
from earthops.errors import DataError, EarthOpsError
from earthops.featurestore import (
    OnlineStoreError,
    apply,
    feature_store,
    get_online,
    materialize,
    offline,
    survey_entities,
    training_set,
    write_online,
)
from earthops.featurestore.tables import load_surveys, survey_features, survey_timestamp
from earthops.settings import Settings, get_settings

HONOLII_SITE = 8712  # the survey site nearest the CoralTemp Honoliʻi pixel (Hawaiʻi)


@pytest.fixture(scope="module")
def surveys(mirror: Path) -> pd.DataFrame:
    return load_surveys()


@pytest.fixture(scope="module")
def repo_dir(surveys: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A feature repository applied from the whole real survey table, materialized to SQLite."""
    repo = tmp_path_factory.mktemp("feature_repo")
    settings = Settings(home=repo.parent, feature_repo=repo)
    summary = apply(surveys, settings=settings)
    assert summary["sites"] == surveys["Site_ID"].nunique()
    materialize(settings=settings)
    return repo


@pytest.fixture
def use_repo(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EARTHOPS_FEATURE_REPO", str(repo_dir))
    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", "sqlite")
    get_settings.cache_clear()
    return repo_dir


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (free port), stopped at the end of the module."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    with devservices.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run the ``earthops`` console entry in-process (feast's import costs ~7 s CPU per
    subprocess); returns (exit code, stdout + stderr)."""
    import sys

    from earthops.cli.app import main

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["earthops", *args])
        get_settings.cache_clear()
        try:
            with pytest.raises(SystemExit) as stop:
                main()
        finally:  # the CLI bound log output to this test's captured stderr: unbind it
            structlog.configure(logger_factory=structlog.PrintLoggerFactory())
        out = capsys.readouterr()
        return int(stop.value.code or 0), out.out + out.err

    return run


def _latest_survey(surveys: pd.DataFrame, site: int) -> pd.Series:
    rows = survey_features(surveys[surveys["Site_ID"] == site])
    return rows.sort_values("event_timestamp").iloc[-1]


def _digest(repo: Path) -> dict[str, str]:
    data = offline.data_dir(repo)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.glob("*.parquet")}


# ------------------------------------------------------------------------------ repository
def test_apply_writes_repo_and_registers_views_with_per_view_ttl(use_repo: Path) -> None:
    assert (use_repo / "feature_store.yaml").is_file()
    assert "build_objects" in (use_repo / "repo.py").read_text()
    store = feature_store()
    views = {v.name: v for v in store.list_feature_views()}
    assert set(views) == {"site_covariates", "survey_features", "sst_stream", "sst_history"}
    assert views["sst_stream"].ttl == timedelta(hours=8)
    assert views["sst_stream"].online and not views["sst_history"].online
    assert views["survey_features"].ttl >= timedelta(days=365)
    assert not views["site_covariates"].ttl  # static: never expires
    assert [e.name for e in store.list_entities()] == ["site"]


def test_get_online_sqlite_serves_newest_survey(use_repo: Path, surveys: pd.DataFrame) -> None:
    multi = surveys.groupby("Site_ID")["Date_Year"].nunique()
    site = int(multi[multi >= 3].index[0])
    expected = _latest_survey(surveys, site)
    got = get_online(site)
    first = surveys[surveys["Site_ID"] == site].iloc[0]
    assert got["site_id"] == site
    assert got["latitude"] == pytest.approx(first["Latitude_Degrees"])
    assert got["realm"] == first["Realm_Name"]
    assert got["survey_dhw"] == pytest.approx(expected["survey_dhw"])
    assert got["survey_sst"] == pytest.approx(expected["survey_sst"])
    assert got["sst"] is None  # no SST stream for this site


def test_cli_get_prints_json_and_rejects_unknown_site(
    use_repo: Path, cli, run_cli, surveys: pd.DataFrame
) -> None:
    code, out = cli("features", "get", "--site", str(HONOLII_SITE))
    assert code == 0, out
    payload = json.loads(out)
    assert payload["site_id"] == HONOLII_SITE
    expected = _latest_survey(surveys, HONOLII_SITE)["survey_sst"]
    assert payload["survey_sst"] == pytest.approx(expected)
    env = {"EARTHOPS_FEATURE_REPO": str(use_repo)}
    bad = run_cli("features", "get", "--site", "987654321", env=env, timeout=120)
    assert bad.returncode == 1
    assert "unknown site 987654321" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------------------ point in time
def test_training_set_joins_each_survey_year_never_a_later_one(
    use_repo: Path, surveys: pd.DataFrame
) -> None:
    entities = survey_entities(surveys)
    frame = training_set(entities)
    assert len(frame) == len(entities)
    truth = survey_features(surveys).set_index(["site_id", "event_timestamp"])
    joined = frame.set_index(["site_id", "event_timestamp"])
    for col in ("survey_sst", "survey_dhw", "survey_samples"):
        pd.testing.assert_series_equal(
            joined[col].sort_index(),
            truth[col].reindex(joined.index).sort_index(),
            check_dtype=False,
            check_names=False,
        )


def test_feature_stamped_after_the_event_never_leaks(use_repo: Path, surveys: pd.DataFrame) -> None:
    multi = surveys.groupby("Site_ID")["Date_Year"].nunique()
    site = int(multi[multi >= 3].index[0])
    years = sorted(surveys.loc[surveys["Site_ID"] == site, "Date_Year"].unique())
    event = survey_timestamp(pd.Series([years[0]]))[0]
    saved = offline.read_table("survey_features", use_repo)
    marker = 999.0
    try:
        late = saved[saved["site_id"] == site].iloc[[0]].copy()
        late["event_timestamp"] = event + pd.Timedelta(seconds=1)
        late["survey_dhw"] = marker
        offline.append_rows(late, "survey_features", use_repo)
        entities = pd.DataFrame(
            {"site_id": [site, site], "event_timestamp": [event, event + pd.Timedelta(seconds=1)]}
        )
        frame = training_set(entities, ["survey_features:survey_dhw"])
        at_event = frame.loc[frame["event_timestamp"] == event, "survey_dhw"].item()
        after = frame.loc[frame["event_timestamp"] > event, "survey_dhw"].item()
        assert at_event == pytest.approx(_first_year_dhw(surveys, site, years[0]))
        assert at_event != marker
        assert after == marker  # the join does see the row once the event is late enough
    finally:
        offline.write_table(saved, "survey_features", use_repo)


def _first_year_dhw(surveys: pd.DataFrame, site: int, year: int) -> float:
    rows = surveys[(surveys["Site_ID"] == site) & (surveys["Date_Year"] == year)]
    return float(rows["SSTA_DHW"].mean())


def test_sst_history_joins_the_last_reading_before_the_event(use_repo: Path, mirror: Path) -> None:
    from earthops.data.tables import read_coraltemp_csv

    sst = read_coraltemp_csv().loc["2015-08-01":"2015-08-04", "sst"]
    rows = pd.DataFrame(
        {"site_id": HONOLII_SITE, "event_timestamp": sst.index, "sst": sst.to_numpy()}
    )
    for col in offline.SST_FEATURE_COLUMNS:
        if col not in rows.columns:
            rows[col] = float("nan")
    saved = offline.read_table("sst_features", use_repo)
    try:
        offline.append_rows(rows, "sst_features", use_repo)
        event = sst.index[1] + pd.Timedelta(hours=6)  # between the 2nd and 3rd reading
        frame = training_set(
            pd.DataFrame({"site_id": [HONOLII_SITE], "event_timestamp": [event]}),
            ["sst_history:sst"],
        )
        assert frame["sst"].item() == pytest.approx(sst.iloc[1])
        far = training_set(
            pd.DataFrame(
                {
                    "site_id": [HONOLII_SITE],
                    "event_timestamp": [sst.index[-1] + pd.Timedelta(days=5)],
                }
            ),
            ["sst_history:sst"],
        )
        assert far["sst"].isna().all()  # older than the history view's TTL: not joined
    finally:
        offline.write_table(saved, "sst_features", use_repo)


# ------------------------------------------------------------------------------ Redis
def test_redis_online_store_with_8h_key_ttl(
    use_repo: Path, redis_server: str, surveys: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", redis_server)
    get_settings.cache_clear()
    materialize()
    got = get_online(HONOLII_SITE)
    assert got["survey_sst"] == pytest.approx(_latest_survey(surveys, HONOLII_SITE)["survey_sst"])
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(count=1000))
    assert len(keys) == surveys["Site_ID"].nunique()
    ttls = {client.ttl(k) for k in keys[:50]}
    assert all(8 * 3600 - 120 < t <= 8 * 3600 for t in ttls)
    with pytest.raises(DataError, match="unknown site"):
        get_online(987654321)


def test_redis_keys_expire_after_the_online_ttl(
    use_repo: Path, redis_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", redis_server + "/1")
    monkeypatch.setenv("EARTHOPS_ONLINE_TTL_HOURS", str(1 / 3600))  # 1 s
    get_settings.cache_clear()
    rows = offline.read_table("site_covariates", use_repo)
    write_online("site_covariates", rows[rows["site_id"] == HONOLII_SITE])
    assert get_online(HONOLII_SITE)["realm"] == "Eastern Indo-Pacific"
    deadline = time.monotonic() + 10
    while True:
        try:
            get_online(HONOLII_SITE)
        except DataError as exc:
            assert "known but has no online features" in str(exc)
            break
        assert time.monotonic() < deadline, "online key did not expire"
        time.sleep(0.2)


def test_redis_unreachable_is_a_clear_error_and_loses_nothing(
    use_repo: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"redis://127.0.0.1:{devservices.free_port()}"
    before = _digest(use_repo)
    monkeypatch.setenv("EARTHOPS_ONLINE_STORE", dead)
    get_settings.cache_clear()
    with pytest.raises(OnlineStoreError, match="unreachable"):
        materialize()
    with pytest.raises(OnlineStoreError, match="offline data kept"):
        get_online(HONOLII_SITE)
    assert _digest(use_repo) == before
    code, out = cli("features", "get", "--site", str(HONOLII_SITE))
    assert code == 1
    assert "unreachable" in out and "Traceback" not in out


# ------------------------------------------------------------------------------ bad input
def test_store_before_apply_and_bad_options_are_clear_errors(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EarthOpsError, match="features apply"):
        feature_store(Settings(feature_repo=tmp_path / "none"))
    monkeypatch.setenv("EARTHOPS_FEATURE_REPO", str(tmp_path / "none"))
    code, out = cli("features", "get", "--site", "1")
    assert code == 1 and "features apply" in out
    code, out = cli("features", "materialize", "--start", "yesterday")
    assert code == 1 and "not an ISO date" in out
    from earthops.featurestore.store import redis_connection_string

    feast_form = redis_connection_string("redis://:secret@10.0.0.5:6380/2").split(",")
    assert feast_form[:3] == ["10.0.0.5:6380", "db=2", "password=secret"]
    assert redis_connection_string("127.0.0.1:6379,db=1") == "127.0.0.1:6379,db=1"
    with pytest.raises(EarthOpsError, match="expected 'sqlite' or a redis"):
        redis_connection_string("postgres://127.0.0.1:5432")
