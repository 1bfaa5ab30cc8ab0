"""Streaming ingestion of sensor records into the feature store."""

from earthops.ingest.stream import IngestReport, ingest_records, run_stream, stored_until

__all__ = ["IngestReport", "ingest_records", "run_stream", "stored_until"]
