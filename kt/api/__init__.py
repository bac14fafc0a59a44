"""The ktpath HTTP API (FastAPI): a thin shell over the store, the tracker and the planner."""

from kt.api.main import create_app

__all__ = ["create_app"]
