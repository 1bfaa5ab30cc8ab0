"""Feature store entry points (the implementation lives in :mod:`earthops.featurestore`)."""

from earthops.featurestore import (
    OnlineStoreError,
    apply,
    get_online,
    materialize,
    survey_entities,
    training_set,
    write_online,
)

__all__ = [
    "OnlineStoreError",
    "apply",
    "get_online",
    "materialize",
    "survey_entities",
    "training_set",
    "write_online",
]
