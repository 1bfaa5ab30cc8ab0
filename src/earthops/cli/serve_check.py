"""The end of ``earthops run``: start the real server for a few seconds on 127.0.0.1, send one
request per trained use case over HTTP, print the answers, stop.

It serves each use case's ``@champion``; where the registry policy refused the promotion
(e.g. not yet in the approved-models list) it serves the version just registered instead and
says so — ``earthops serve`` itself only ever serves the aliases.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from rich.table import Table

from earthops.cli.common import console
from earthops.devservices.local import LOOPBACK, free_port
from earthops.errors import EarthOpsError
from earthops.logs import get_logger
from earthops.serving.pool import CHAMPION, registry_aliases
from earthops.settings import get_settings

log = get_logger(__name__)


def _aliases(fallback: dict[str, str]) -> Any:
    def read(usecase: str, alias: str) -> str | None:
        found = registry_aliases(usecase, alias)
        if found is None and alias == CHAMPION:
            return fallback.get(usecase)
        return found

    return read


def _start(app: Any, port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    config = uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="serve-check", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and thread.is_alive():
        try:
            if httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=2).status_code == 200:
                return server, thread
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.should_exit = True
    raise EarthOpsError(f"the check server did not start on {LOOPBACK}:{port}")


def serve_check(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One request per use case that trained; returns what each answered (or why not)."""
    from earthops.serving.app import create_app
    from earthops.serving.control import ServerControl
    from earthops.usecases import get_usecase

    done = [o for o in outcomes if o.get("status") == "ok" and o.get("version")]
    if not done:
        return []
    usecases = {o["usecase"]: get_usecase(o["usecase"]) for o in done}
    usecases = {n: u for n, u in usecases.items() if hasattr(u, "request_model")}
    if not usecases:
        return []
    if "reef-bleaching" in usecases:
        from earthops.featurestore import apply, materialize

        apply()
        materialize()
    fallback = {o["usecase"]: str(o["version"]["version"]) for o in done}
    settings = get_settings()
    control = ServerControl(usecases, settings, aliases=_aliases(fallback))
    port = free_port()
    server, thread = _start(create_app(control, settings), port)
    try:
        return [_ask(port, name, usecase) for name, usecase in usecases.items()]
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _ask(port: int, name: str, usecase: Any) -> dict[str, Any]:
    try:
        record = usecase.example_record().model_dump(mode="json", exclude_none=True)
    except EarthOpsError as exc:
        return {"usecase": name, "status": "skipped", "answer": str(exc)}
    response = httpx.post(
        f"http://{LOOPBACK}:{port}/v1/{name}/predict", json={"records": [record]}, timeout=120
    )
    body = response.json()
    if response.status_code != 200:
        return {"usecase": name, "status": str(response.status_code), "answer": body}
    answer = dict(body["predictions"][0])
    answer.pop("probabilities", None)
    served = f"v{body['model_version']}"
    if registry_aliases(name, CHAMPION) is None:
        served += " (not champion: promotion refused)"
    return {"usecase": name, "status": served, "answer": answer}


def print_answers(answers: list[dict[str, Any]]) -> None:
    if not answers:
        return
    table = Table("use case", "served", "answer", title="One request per use case (earthops serve)")
    for a in answers:
        answer = a["answer"]
        if isinstance(answer, dict):
            answer = {k: v for k, v in answer.items() if k != "model_name"}
        table.add_row(a["usecase"], a["status"], json.dumps(answer, default=str)[:300])
    console.print(table)
    console.print(
        "Serve the registry's champions: [bold]earthops serve[/] (http://127.0.0.1:8080/docs)",
        soft_wrap=True,
        highlight=False,
    )
