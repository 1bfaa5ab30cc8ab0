"""Model serving: a typed FastAPI server with canary, shadow, prediction log and metrics."""
