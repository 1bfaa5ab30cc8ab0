"""Classification metrics with per-class scores keyed by IGBP class name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from earthops.data.legends import IGBP
from earthops.models.metrics import classification_metrics as _metrics


def classification_metrics(
    y: np.ndarray, pred: np.ndarray, classes: Sequence[int]
) -> dict[str, Any]:
    """The DESIGN metrics with ``per_class`` keyed by IGBP class name."""
    return _metrics(y, pred, classes, IGBP.names())
