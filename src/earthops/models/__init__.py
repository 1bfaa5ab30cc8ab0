"""EarthOps models."""
