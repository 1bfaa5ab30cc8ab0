"""EarthOps cli."""
