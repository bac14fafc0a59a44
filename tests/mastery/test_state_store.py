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


@pytest.mark.parametrize("table", ["mastery_state", "Mastery States"])
def test_a_table_from_before_the_evidence_column_is_upgraded_in_place(db_url, table):
    """States saved by an older ktpath (no ``evidence`` column) still load, as having no evidence
    yet, and the column is added so new evidence is kept (also under a table name that needs
    quoting)."""
    import torch

    from kt.mastery.state import to_bytes
    from kt.mastery.store import StateMeta

    state = {"h": torch.ones(1, 2)}
    engine = sa.create_engine(db_url)
    blob = "BYTEA" if engine.dialect.name == "postgresql" else "BLOB"
    name = engine.dialect.identifier_preparer.quote(table)
    with engine.begin() as conn:  # the table and a row, as the older ktpath wrote them
        conn.execute(sa.text(
            f"CREATE TABLE {name} (user_id VARCHAR(255) PRIMARY KEY, model_version VARCHAR(255) NOT NULL, "
            f"state {blob} NOT NULL, n_events INTEGER NOT NULL, last_event_at FLOAT, n_obs TEXT NOT NULL, "
            "last_practiced TEXT NOT NULL, practiced_mastery TEXT NOT NULL, updated_at FLOAT NOT NULL)"))
        conn.execute(sa.text(
            f"INSERT INTO {name} VALUES ('u1', 'v1', :state, 3, 1.0, '{{\"t1\": 3}}', '{{\"t1\": 1.0}}', "
            "'{\"t1\": 0.5}', 1.0)"), {"state": to_bytes(state)})
    engine.dispose()
    store = MasteryStateStore(db_url, table=table)
    rec = store.load("u1")
    assert rec.meta.n_obs == {"t1": 3} and rec.meta.trail == {} and rec.meta.offset == {}
    store.save("u2", state, StateMeta("v1", n_obs={"t1": 4}, trail={"t1": [0.4, 0.5]}, offset={"t1": [-0.3, 2.0]}))
    store.close()
    again = MasteryStateStore(db_url, table=table)  # reopening finds the column there
    back = again.load("u2").meta
    assert back.trail == {"t1": [0.4, 0.5]} and back.offset == {"t1": [-0.3, 2.0]}
    assert again.load("u1").meta.n_obs == {"t1": 3}
    again.close()
