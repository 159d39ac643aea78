"""The REST API under /api/v1 (FastAPI): datasets, uploads, runs, leaderboards, environments, accounts."""

from bench.web.api.app import create_app

__all__ = ["create_app"]
