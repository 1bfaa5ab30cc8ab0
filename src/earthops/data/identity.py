"""Dataset identity: content digests and the small reference logged as MLflow dataset inputs."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetRef:
    """Name, location and content digest of a loaded dataset or derived table (lineage)."""

    name: str
    uri: str
    digest: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def short(self) -> str:
        return self.digest[:12]


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def files_digest(paths: list[Path]) -> str:
    """Digest of several files (order-independent, names included)."""
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        h.update(path.name.encode())
        h.update(file_sha256(path).encode())
    return h.hexdigest()


def array_digest(values: np.ndarray | xr.DataArray) -> str:
    """Digest of an array's dtype, shape and bytes (coordinates of a DataArray included)."""
    h = hashlib.sha256()
    data = values.values if isinstance(values, xr.DataArray) else np.asarray(values)
    h.update(str(data.dtype).encode())
    h.update(str(data.shape).encode())
    h.update(np.ascontiguousarray(data).tobytes())
    if isinstance(values, xr.DataArray):
        for name in sorted(map(str, values.coords)):
            coord = values.coords[name].values
            h.update(name.encode())
            h.update(
                np.ascontiguousarray(
                    coord.astype(str) if coord.dtype == object else coord
                ).tobytes()
            )
    return h.hexdigest()


def frame_digest(frame: pd.DataFrame) -> str:
    """Digest of a table's columns, dtypes and row contents (index included)."""
    h = hashlib.sha256()
    h.update("|".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


def digest_of(obj: Any) -> str:
    """Content digest of a DataFrame, DataArray, ndarray or file path."""
    if isinstance(obj, pd.DataFrame):
        return frame_digest(obj)
    if isinstance(obj, xr.DataArray | np.ndarray):
        return array_digest(obj)
    if isinstance(obj, str | Path):
        return file_sha256(obj)
    raise TypeError(f"cannot digest {type(obj).__name__}")


def attach_ref(obj: Any, name: str, uri: str, digest: str | None = None) -> DatasetRef:
    """Compute (or take) the digest, store the reference in ``obj.attrs`` and return it."""
    ref = DatasetRef(name=name, uri=str(uri), digest=digest or digest_of(obj))
    obj.attrs["dataset_ref"] = ref.to_dict()
    return ref


def ref_of(obj: Any) -> DatasetRef | None:
    """The reference attached by :func:`attach_ref`, if any."""
    raw = getattr(obj, "attrs", {}).get("dataset_ref")
    return DatasetRef(**raw) if raw else None
