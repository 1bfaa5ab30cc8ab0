"""EarthOps data."""
