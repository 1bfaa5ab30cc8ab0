"""EarthOps pipelines."""
