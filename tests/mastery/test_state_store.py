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


def test_a_table_from_before_the_evidence_column_is_upgraded_in_place(db_url):
    """States saved by an older ktpath (no ``evidence`` column) still load, as having no evidence
    yet, and the column is added so new evidence is kept."""
    import torch

    from kt.mastery.state import to_bytes
    from kt.mastery.store import StateMeta

    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE TABLE mastery_state (user_id VARCHAR(255) PRIMARY KEY, model_version VARCHAR(255) NOT NULL, "
            "state BYTEA NOT NULL, n_events INTEGER NOT NULL, last_event_at FLOAT, n_obs TEXT NOT NULL, "
            "last_practiced TEXT NOT NULL, practiced_mastery TEXT NOT NULL, updated_at FLOAT NOT NULL)"
            .replace("BYTEA", "BYTEA" if engine.dialect.name == "postgresql" else "BLOB")))
    engine.dispose()
    old = MasteryStateStore(db_url)
    state = {"h": torch.ones(1, 2)}
    # a row written the old way: no evidence
    with old.engine.begin() as conn:
        conn.execute(old.table.insert().values(
            user_id="u1", model_version="v1", state=to_bytes(state),
            n_events=3, last_event_at=1.0, n_obs='{"t1": 3}', last_practiced='{"t1": 1.0}',
            practiced_mastery='{"t1": 0.5}', evidence=None, updated_at=1.0))
    rec = old.load("u1")
    assert rec.meta.n_obs == {"t1": 3} and rec.meta.trail == {} and rec.meta.offset == {}
    meta = StateMeta("v1", n_obs={"t1": 4}, trail={"t1": [0.4, 0.5]}, offset={"t1": [-0.3, 2.0]})
    old.save("u2", state, meta)
    old.close()
    again = MasteryStateStore(db_url)  # reopening finds the column there
    back = again.load("u2").meta
    assert back.trail == {"t1": [0.4, 0.5]} and back.offset == {"t1": [-0.3, 2.0]}
    assert "evidence" in {c["name"] for c in sa.inspect(again.engine).get_columns("mastery_state")}
    again.close()
