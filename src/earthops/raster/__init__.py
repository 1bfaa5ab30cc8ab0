"""Raster output: Cloud-Optimized GeoTIFF writing and validation."""

from earthops.raster.cog import CogValidation, validate_cog, write_cog

__all__ = ["CogValidation", "validate_cog", "write_cog"]
