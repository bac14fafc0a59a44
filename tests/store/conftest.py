"""Store fixtures: every store test runs against SQLite and a throwaway PostgreSQL server."""

from __future__ import annotations

import pytest

from kt.store import EventStore


@pytest.fixture
def store(db_url):
    s = EventStore(db_url)
    yield s
    s.close()
