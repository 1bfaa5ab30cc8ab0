"""``earthops dashboard``: a Plotly Dash monitoring app over the registry, the prediction log,
drift reports, alert records and maps (see :mod:`earthops.dashboard.sources`)."""
