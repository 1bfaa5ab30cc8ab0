"""The model server end to end on a real registered reef model (real surveys, real Feast
online store, real MLflow registry, the app in-process over ASGI).

The only seam: a loader that wraps one registered version so that it fails or is slow — a
challenger "made to fail" as the issue asks — instead of training a broken model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from asgi_lifespan import LifespanManager

import serving_support
from earthops.registry.inference import LoadedModel, load
from earthops.settings import get_settings
from earthops.usecases import get_usecase
from serving_support import NAME, TOKEN, _covariates, _later_rows, _sample, _sites

served_home = serving_support.served_home  # the shared fixtures
home = serving_support.home


def _app(loader: Callable[[str], LoadedModel] | None = None) -> Any:
    from earthops.serving.app import create_app
    from earthops.serving.control import ServerControl

    settings = get_settings()
    control = ServerControl({NAME: get_usecase(NAME)}, settings, loader=loader)
    return create_app(control, settings), control


async def _client(app: Any) -> tuple[LifespanManager, httpx.AsyncClient]:
    manager = LifespanManager(app, startup_timeout=120)
    await manager.__aenter__()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=manager.app), base_url="http://test", timeout=60
    )
    return manager, client


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


# ------------------------------------------------------------------------------ predict
def test_answers_equal_the_batch_path_and_name_the_version(home: Path) -> None:
    """Explicit covariates of real later-year surveys: the server's probabilities equal the
    logged model's own ``predict_proba`` (what ``evaluate`` scores) to 1e-12."""
    champion = load(f"models:/{NAME}@champion")
    rows = _later_rows()
    columns = champion.card.input_columns
    records = [
        {"site_id": int(r["Site_ID"]), "covariates": _covariates(r, columns)}
        for _, r in rows.iterrows()
    ]

    async def go() -> httpx.Response:
        app, _ = _app()
        manager, client = await _client(app)
        try:
            return await client.post(f"/v1/{NAME}/predict", json={"records": records})
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    response = _run(go())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == "1" and body["arm"] == "champion"
    served = np.array([p["probability"] for p in body["predictions"]])
    expected = champion.model.predict_proba(rows[columns])[:, 1]
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)
    threshold = champion.card.threshold
    assert [p["bleaching"] for p in body["predictions"]] == list(expected >= threshold)
    assert len(body["record_ids"]) == len(records)


def test_site_id_reads_the_online_store_and_reports_the_alert_level(home: Path) -> None:
    from earthops.featurestore import get_online

    site = int(_later_rows(1)["Site_ID"].iloc[0])
    online = get_online(site)

    async def go() -> list[httpx.Response]:
        app, _ = _app()
        manager, client = await _client(app)
        try:
            before = await client.get("/metrics")
            return [
                before,
                await client.post(f"/v1/{NAME}/predict", json={"records": [{"site_id": site}]}),
                await client.post(f"/v1/{NAME}/predict", json={"records": [{"site_id": 99999999}]}),
                await client.get("/readyz"),
                await client.get("/v1/models"),
                await client.get("/metrics"),
            ]
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    before, ok, unknown, ready, models, metrics = _run(go())
    assert ok.status_code == 200, ok.text
    answer = ok.json()["predictions"][0]
    assert answer["realm"] == online["realm"]
    assert answer["dhw"] == pytest.approx(
        online["dhw"] if online.get("dhw") is not None else online["survey_dhw"]
    )
    assert 0 <= answer["alert_level"] <= 7 and answer["alert_name"]
    assert unknown.status_code == 404 and "99999999" in unknown.json()["detail"]
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    arms = {a["alias"]: a for a in models.json()["usecases"][0]["arms"]}
    assert arms["champion"]["version"] == "1" and arms["champion"]["loaded"]
    assert len(arms["champion"]["datasets"]["bleaching-surveys"]) == 64  # its SHA-256
    served = {"arm": "champion", "outcome": "ok", "version": "1"}
    counted = _sample(metrics.text, "earthops_requests_total", **served)
    assert counted - _sample(before.text, "earthops_requests_total", **served) == 1.0


@pytest.mark.parametrize(
    ("payload", "status", "named"),
    [
        ({"records": [{"site_id": "abc"}]}, 422, "site_id"),
        ({"records": [{"site_id": 1, "colour": 3}]}, 422, "colour"),
        ({"records": []}, 422, "records"),
        ({"records": [{"site_id": 1, "covariates": {"Temp": 99}}]}, 422, "Temp"),
        ({"rows": [{"site_id": 1}]}, 422, "records"),
    ],
)
def test_bad_payloads_are_422_naming_the_field(
    home: Path, payload: dict[str, Any], status: int, named: str
) -> None:
    async def go() -> httpx.Response:
        app, _ = _app()
        manager, client = await _client(app)
        try:
            return await client.post(f"/v1/{NAME}/predict", json=payload)
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    response = _run(go())
    assert response.status_code == status, response.text
    assert named in response.text


def test_malformed_json_and_oversize_bodies_are_4xx(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EARTHOPS_SERVE_MAX_BODY_BYTES", "2000")
    get_settings.cache_clear()
    big = {"records": [{"site_id": i} for i in range(400)]}

    async def go() -> list[httpx.Response]:
        app, _ = _app()
        manager, client = await _client(app)
        try:
            return [
                await client.post(
                    f"/v1/{NAME}/predict",
                    content=b'{"records": [',
                    headers={"content-type": "application/json"},
                ),
                await client.post(f"/v1/{NAME}/predict", json=big),
            ]
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    malformed, oversize = _run(go())
    assert malformed.status_code == 422 and "json" in malformed.text.lower()
    assert oversize.status_code == 413 and "2000" in oversize.json()["detail"]


# ------------------------------------------------------------------------------ admin
def test_admin_endpoints_need_the_token_and_change_nothing_without_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> tuple[list[httpx.Response], Any]:
        app, control = _app()
        manager, client = await _client(app)
        url = f"/v1/admin/{NAME}/weights"
        try:
            out = [
                await client.post(url, json={"challenger": 0.5}),
                await client.post(
                    url, json={"challenger": 0.5}, headers={"Authorization": "Bearer nope"}
                ),
                await client.post(
                    f"/v1/admin/{NAME}/rollback", headers={"Authorization": "Bearer nope"}
                ),
            ]
            before = control.router.split(NAME).weight
            out.append(
                await client.post(
                    url, json={"challenger": 0.5}, headers={"Authorization": f"Bearer {TOKEN}"}
                )
            )
            return out, (before, control.router.split(NAME).weight)
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    (missing, wrong, wrong_rollback, right), (before, after) = _run(go())
    assert missing.status_code == 401 and wrong.status_code == 403
    assert wrong_rollback.status_code == 403
    assert before == pytest.approx(0.1) and after == pytest.approx(0.5)
    assert right.status_code == 200 and right.json()["challenger_weight"] == 0.5

    monkeypatch.delenv("EARTHOPS_ADMIN_TOKEN")
    get_settings.cache_clear()

    async def disabled() -> httpx.Response:
        app, _ = _app()
        manager, client = await _client(app)
        try:
            return await client.post(
                f"/v1/admin/{NAME}/reload", headers={"Authorization": f"Bearer {TOKEN}"}
            )
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    response = _run(disabled())
    assert response.status_code == 403 and "EARTHOPS_ADMIN_TOKEN" in response.json()["detail"]


# ------------------------------------------------------------------------------ canary
class _Broken:
    """A registered model made to fail: every call raises (a broken challenger)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("challenger made to fail")


def _failing_loader(bad_version: str) -> Callable[[str], LoadedModel]:
    def loader(uri: str) -> LoadedModel:
        model = load(uri)
        if uri.endswith(f"/{bad_version}"):
            model.model = _Broken(model.model)
        return model

    return loader


def _canary_traffic(
    loader: Callable[[str], LoadedModel] | None, sites: list[int]
) -> dict[str, Any]:
    """Make v2 the challenger, send traffic until the controller decides, return what
    happened (responses' versions, the final aliases, the verdicts)."""
    from earthops.registry.tracking import configure

    configure().set_registered_model_alias(NAME, "challenger", "2")

    async def go() -> dict[str, Any]:
        app, control = _app(loader)
        manager, client = await _client(app)
        versions: list[str] = []
        failed = 0
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                for site in sites:
                    r = await client.post(
                        f"/v1/{NAME}/predict", json={"records": [{"site_id": site}]}
                    )
                    if r.status_code != 200:
                        failed += 1
                        continue
                    versions.append(r.json()["model_version"])
                state = control.controller.states.get(NAME)
                if state is None or state.finished:
                    break
            await asyncio.sleep(0)  # let the canary thread finish applying
            return {
                "versions": versions,
                "failed": failed,
                "state": control.controller.states.get(NAME),
                "history": [v.to_dict() for v in control.controller.history],
                "weight": control.describe().usecases[0].challenger_weight,
                "logged": control.log,
            }
        finally:
            await client.aclose()
            await manager.__aexit__(None, None, None)

    return _run(go())


def test_a_good_challenger_is_promoted_after_the_window(home: Path) -> None:
    from earthops.registry.tracking import configure

    outcome = _canary_traffic(None, _sites(300))
    assert outcome["failed"] == 0
    assert set(outcome["versions"]) <= {"1", "2"} and "2" in outcome["versions"]
    client = configure()
    champion = str(client.get_model_version_by_alias(NAME, "champion").version)
    assert champion == "2", (
        [(h["action"], h["reasons"], h.get("outcome")) for h in outcome["history"][-2:]],
        outcome["state"],
        {v: outcome["versions"].count(v) for v in set(outcome["versions"])},
    )
    assert [h["outcome"] for h in outcome["history"]].count("promoted") == 1


def test_a_failing_challenger_is_rolled_back_and_traffic_returns_to_the_champion(
    home: Path,
) -> None:
    from earthops.registry.tracking import configure

    outcome = _canary_traffic(_failing_loader("2"), _sites(300))
    assert outcome["failed"] == 0  # the champion answered for the broken challenger
    assert set(outcome["versions"]) == {"1"}
    client = configure()
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert "challenger" not in client.get_registered_model(NAME).aliases
    tags = client.get_model_version(NAME, "2").tags
    assert tags["stage"] == "rejected" and "error" in tags["earthops.rejected_reason"]
    assert outcome["weight"] == 0.0
