"""MasteryStateStore's table creation when API workers start together."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from kt.mastery.store import MasteryStateStore


def test_a_table_another_worker_created_meanwhile_is_fine(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    real = sa.MetaData.create_all

    def racing(self, bind, **kw):
        real(self, bind, **kw)  # the other worker's CREATE lands first...
        real(self, bind, checkfirst=False)  # ...so ours fails with "already exists"

    monkeypatch.setattr(sa.MetaData, "create_all", racing)
    store = MasteryStateStore(url)
    assert sa.inspect(store.engine).has_table("mastery_state")
    store.close()


def test_other_creation_errors_still_raise(tmp_path, monkeypatch):
    def failing(self, bind, **kw):
        raise sa.exc.OperationalError("CREATE TABLE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(sa.MetaData, "create_all", failing)
    with pytest.raises(sa.exc.OperationalError):
        MasteryStateStore(f"sqlite:///{tmp_path / 'state.db'}")
