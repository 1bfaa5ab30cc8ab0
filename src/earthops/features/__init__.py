"""EarthOps features."""
