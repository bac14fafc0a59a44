"""Shared by the API tests (a plain module: conftest names collide across test folders)."""

from __future__ import annotations

from pathlib import Path

API_KEY = "test-key"


def make_settings(home: Path, db_url: str):
    from kt.config import Settings

    return Settings(home=home, db_url=db_url, api_keys=(API_KEY,))
