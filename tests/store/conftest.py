"""Store fixtures: every store test runs against SQLite and a throwaway PostgreSQL server."""

from __future__ import annotations

import pytest

from kt.store import EventStore
from kt.store.pgserver import NOT_INSTALLED, PostgresServer, find_pg_bin


@pytest.fixture(scope="session")
def pg_server():
    if find_pg_bin() is None:
        pytest.skip(NOT_INSTALLED)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kt.db'}"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture
def store(db_url):
    s = EventStore(db_url)
    yield s
    s.close()
