"""ReefGuard feature store (Feast): definitions, offline Parquet tables, online lookups."""

from earthops.featurestore.store import (
    OnlineStoreError,
    apply,
    feature_store,
    get_online,
    known_sites,
    materialize,
    survey_entities,
    training_set,
    write_online,
)

__all__ = [
    "OnlineStoreError",
    "apply",
    "feature_store",
    "get_online",
    "known_sites",
    "materialize",
    "survey_entities",
    "training_set",
    "write_online",
]
