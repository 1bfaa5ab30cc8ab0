"""Shared CLI helpers: console, JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

console = Console()


def write_json(payload: Any, path: Path | None) -> None:
    """Write ``payload`` as JSON to ``path`` (if given)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))


def print_json(payload: Any) -> None:
    console.print_json(json.dumps(payload, default=str))
