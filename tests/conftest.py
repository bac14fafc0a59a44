"""Fixtures shared across layers: one throwaway PostgreSQL server per test session, and a
database URL parametrised over both backends the project supports."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pg_server():
    from kt.store.pgserver import NOT_INSTALLED, PostgresServer, find_pg_bin

    if find_pg_bin() is None:
        pytest.skip(NOT_INSTALLED)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh, empty database URL of each backend (SQLite file, PostgreSQL database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kt.db'}"
    return request.getfixturevalue("pg_server").create_database()
