"""Model monitoring: drift statistics and data quality (generic; never imports a use case)."""
