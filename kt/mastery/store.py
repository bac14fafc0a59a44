"""Persistent per-user mastery state, through SQLAlchemy (SQLite default, PostgreSQL by URL).

One row per user: the model version the state was built with, the model's online state as a
small binary blob (:func:`kt.mastery.state.to_bytes`), and per-topic evidence as JSON
(``n_obs``, ``last_practiced`` in unix seconds, ``practiced_mastery`` = the estimate right
after the last practice, used to detect decay; ``evidence``: each topic's mastery trail over its
last practices and its calibration offset, see :class:`StateMeta`). A state whose ``model_version`` differs from
the serving model's is stale: rebuild it from the user's events (``MasteryTracker.rebuild``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from kt.mastery import state as st
from kt.models.base import KTState


@dataclass
class StateMeta:
    """Everything stored next to the model state. Per-topic dicts are keyed by topic id."""

    model_version: str
    n_events: int = 0
    last_event_at: float | None = None  # unix seconds of the latest observed interaction
    n_obs: dict[str, int] = field(default_factory=dict)
    last_practiced: dict[str, float] = field(default_factory=dict)
    practiced_mastery: dict[str, float] = field(default_factory=dict)
    # mastery right after each of the topic's last ``progress_window + 1`` practices, oldest first
    trail: dict[str, list[float]] = field(default_factory=dict)
    # [offset in logits, its precision]: the Gaussian (Laplace) estimate of how far the user's
    # outcomes on the topic sit from the model's predictions
    offset: dict[str, list[float]] = field(default_factory=dict)
    updated_at: float = 0.0


@dataclass
class StoredState:
    state: KTState
    meta: StateMeta


class MasteryStateStore:
    """``load(user_id)`` / ``save(user_id, state, meta)`` over a SQLAlchemy URL.

    url: ``sqlite:///path.db`` (WAL journal), ``sqlite://`` (in memory, one shared
    connection) or ``postgresql://...``. table: table name, created when missing.
    """

    def __init__(self, url: str = "sqlite://", table: str = "mastery_state") -> None:
        self.url = url
        kw: dict = {}
        if url.startswith("sqlite"):
            if url in ("sqlite://", "sqlite:///:memory:"):
                kw = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
            else:
                kw = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        self.engine = sa.create_engine(url, **kw)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        md = sa.MetaData()
        self.table = sa.Table(
            table,
            md,
            sa.Column("user_id", sa.String(255), primary_key=True),
            sa.Column("model_version", sa.String(255), nullable=False, index=True),
            sa.Column("state", sa.LargeBinary, nullable=False),
            sa.Column("n_events", sa.Integer, nullable=False),
            sa.Column("last_event_at", sa.Float),
            sa.Column("n_obs", sa.Text, nullable=False),
            sa.Column("last_practiced", sa.Text, nullable=False),
            sa.Column("practiced_mastery", sa.Text, nullable=False),
            sa.Column("evidence", sa.Text),
            sa.Column("updated_at", sa.Float, nullable=False),
        )
        try:
            md.create_all(self.engine)
        except sa.exc.DBAPIError:
            # another process created the table between our check and our CREATE: fine if it exists
            if not sa.inspect(self.engine).has_table(table):
                raise
        _add_missing_columns(self.engine, self.table)
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        # statements built once: constructing them per call costs more than the SQL itself
        upsert = insert(self.table)
        cols = {c.name: upsert.excluded[c.name] for c in self.table.columns if c.name != "user_id"}
        self._upsert = upsert.on_conflict_do_update(index_elements=["user_id"], set_=cols)
        self._select = sa.select(self.table).where(self.table.c.user_id.in_(sa.bindparam("ids", expanding=True)))

    @classmethod
    def from_settings(cls, settings) -> MasteryStateStore:
        """The store in the project's database (``Settings.db_url``)."""
        if settings.db_url.startswith("sqlite:///"):
            from pathlib import Path

            Path(settings.db_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        return cls(settings.db_url)

    # ------------------------------------------------------------------ io
    def load(self, user_id: str) -> StoredState | None:
        return self.load_many([user_id]).get(str(user_id))

    def load_many(self, user_ids: Iterable[str]) -> dict[str, StoredState]:
        ids = [str(u) for u in user_ids]
        out: dict[str, StoredState] = {}
        with self.engine.connect() as conn:
            for s in range(0, len(ids), 500):
                rows = conn.execute(self._select, {"ids": ids[s : s + 500]})
                for r in rows:
                    out[r.user_id] = StoredState(st.from_bytes(r.state), _meta_from_row(r))
        return out

    def save(self, user_id: str, state: KTState, meta: StateMeta) -> None:
        self.save_many([(user_id, state, meta)])

    def save_many(self, records: Iterable[tuple[str, KTState, StateMeta]]) -> None:
        now = time.time()
        rows = []
        for user_id, state, meta in records:
            meta.updated_at = now
            rows.append(
                {
                    "user_id": str(user_id),
                    "model_version": meta.model_version,
                    "state": st.to_bytes(state),
                    "n_events": int(meta.n_events),
                    "last_event_at": meta.last_event_at,
                    "n_obs": json.dumps(meta.n_obs),
                    "last_practiced": json.dumps(meta.last_practiced),
                    "practiced_mastery": json.dumps(meta.practiced_mastery),
                    "evidence": json.dumps({"trail": meta.trail, "offset": meta.offset}),
                    "updated_at": now,
                }
            )
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(self._upsert, rows)

    def delete(self, user_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.user_id == str(user_id)))

    def users(self, model_version: str | None = None, stale: bool = False) -> list[str]:
        """All user ids; with ``model_version``, those built with it (or, ``stale=True``, without)."""
        q = sa.select(self.table.c.user_id).order_by(self.table.c.user_id)
        if model_version is not None:
            cond = self.table.c.model_version == model_version
            q = q.where(~cond if stale else cond)
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def close(self) -> None:
        self.engine.dispose()


def _add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Add the nullable columns a store written by an older ktpath lacks (``evidence``): states
    saved before read as having no evidence yet."""
    have = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
    quote = engine.dialect.identifier_preparer.quote
    for col in table.columns:
        if col.name in have or not col.nullable:
            continue
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(col.name)} "
                                     f"{col.type.compile(engine.dialect)}"))
        except sa.exc.DBAPIError:
            # another process added it first: fine if it is there now
            if col.name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                raise


def _meta_from_row(r) -> StateMeta:
    evidence = json.loads(r.evidence) if r.evidence else {}
    return StateMeta(
        model_version=r.model_version,
        n_events=r.n_events,
        last_event_at=r.last_event_at,
        n_obs=json.loads(r.n_obs),
        last_practiced=json.loads(r.last_practiced),
        practiced_mastery=json.loads(r.practiced_mastery),
        trail=evidence.get("trail", {}),
        offset=evidence.get("offset", {}),
        updated_at=r.updated_at,
    )


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
