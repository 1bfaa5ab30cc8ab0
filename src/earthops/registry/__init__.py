"""EarthOps registry."""
