"""EarthOps: an open MLOps platform for Earth-observation models."""

__version__ = "0.1.0"
