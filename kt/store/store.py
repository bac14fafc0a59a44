"""The event/catalog store over SQLAlchemy Core: SQLite (WAL) embedded, PostgreSQL by URL.

Durability: every write runs in its own transaction and is committed before the method
returns, so an acknowledged ingest survives a crash. SQLite runs with ``journal_mode=WAL``
(readers never block the writer) and ``synchronous=FULL`` (a commit is on disk, not only in
the OS cache, when it returns).

Idempotency: events are inserted with ``INSERT ... ON CONFLICT (event_id) DO NOTHING
RETURNING event_id``; ids not returned were already present and are reported as duplicates.
The first write of an event id wins.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    DateTime,
    Engine,
    Table,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    tuple_,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError

from kt.config import SettingsError
from kt.data.schema import EVENTS
from kt.store.schema import CATALOG_TABLES, PRUNED, catalog_changes, events, metadata, path_cache
from kt.store.schema import users as users_table

EVENT_COLUMNS: tuple[str, ...] = tuple(EVENTS.column_names)
# the observable signals (read_fraction, dwell_seconds, ...): every event column after the keys
SIGNAL_COLUMNS: tuple[str, ...] = tuple(
    n for n in EVENT_COLUMNS if n not in ("event_id", "user_id", "content_id", "timestamp", "folder_id")
)

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(frozen=True)
class IngestResult:
    """Which event ids of a batch were newly stored and which were already there."""

    inserted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def normalize_url(url: str) -> str:
    """``postgresql://`` -> ``postgresql+psycopg://`` (psycopg 3 is the installed driver)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def to_utc(value: Any) -> datetime | None:
    """Any timestamp-like value -> aware UTC ``datetime`` (naive values are taken as UTC)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _clean(value: Any) -> Any:
    """NaN/NA -> None and numpy scalars -> Python scalars, for drivers and JSON."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    # several API workers share one file: wait for the writer lock instead of failing
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


CATALOG_WRITE_LOCK = 0x6B74_6361  # PostgreSQL advisory lock key of catalog writes ("ktca")


class EventStore:
    """Events, catalog and users in one database. Thread-safe (a pooled engine)."""

    def __init__(self, url: str, *, create: bool = True, echo: bool = False) -> None:
        self.url = normalize_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[1] if "///" in self.url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=8, max_overflow=8, pool_pre_ping=True)
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as exc:  # not a URL, or a dialect whose driver is absent
            raise SettingsError(f"database URL {url!r} (KT_DB_URL or --db-url): {exc}; expected sqlite:///PATH or "
                                "postgresql://USER@HOST:PORT/DB") from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        if self.dialect not in _INSERTS:
            raise ValueError(f"unsupported store dialect {self.dialect!r} in {url!r} (sqlite or postgresql)")
        if create:
            metadata.create_all(self.engine)

    @classmethod
    def from_settings(cls, settings) -> EventStore:
        return cls(settings.db_url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    # ------------------------------------------------------------------ events
    def insert_events(self, rows: Sequence[Mapping[str, Any]] | pd.DataFrame) -> IngestResult:
        """Store events idempotently; committed before returning.

        Each row has the contract's event columns (``EVENT_COLUMNS``) plus ``outcome`` (0/1, or
        None/NaN when the outcome rule finds the event ambiguous).
        Ids repeated inside the batch count once; later copies are duplicates.
        """
        if len(rows) == 0:
            return IngestResult()
        now = datetime.now(UTC)
        candidates = _frame_records(rows, now) if isinstance(rows, pd.DataFrame) else (
            self._event_record(r, now) for r in rows
        )
        records: list[dict[str, Any]] = []
        seen: set[str] = set()
        batch_dups: list[str] = []
        for rec in candidates:
            eid = rec["event_id"]
            if eid in seen:
                batch_dups.append(eid)
                continue
            seen.add(eid)
            records.append(rec)
        stmt = _INSERTS[self.dialect](events).on_conflict_do_nothing(index_elements=["event_id"])
        stmt = stmt.returning(events.c.event_id)
        inserted: set[str] = set()
        with self.engine.begin() as conn:
            for chunk in _chunks(records, 2000):
                inserted.update(conn.execute(stmt, chunk).scalars().all())
        ordered = [r["event_id"] for r in records]
        return IngestResult(
            inserted=[e for e in ordered if e in inserted],
            duplicates=[e for e in ordered if e not in inserted] + batch_dups,
        )

    @staticmethod
    def _event_record(r: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "event_id": str(r["event_id"]),
            "user_id": str(r["user_id"]),
            "content_id": str(r["content_id"]),
            "timestamp": to_utc(r["timestamp"]),
            "folder_id": None if _clean(r.get("folder_id")) is None else str(r["folder_id"]),
            "signals": {k: _clean(r.get(k)) for k in SIGNAL_COLUMNS},
            "outcome": None if _clean(r.get("outcome")) is None else int(r["outcome"]),
            "ingested_at": now,
        }

    @staticmethod
    def _event_row(row) -> dict[str, Any]:
        m = row._mapping
        signals = m["signals"] or {}
        out = {
            "event_id": m["event_id"],
            "user_id": m["user_id"],
            "content_id": m["content_id"],
            "timestamp": to_utc(m["timestamp"]),
            "folder_id": m["folder_id"],
        }
        out.update({k: signals.get(k) for k in SIGNAL_COLUMNS})
        out["outcome"] = None if m["outcome"] is None else int(m["outcome"])
        return out

    def user_events(self, user_id: str, limit: int | None = None, labelled: bool = False) -> list[dict[str, Any]]:
        """A user's events in time order; with ``limit``, only the most recent ``limit``;
        ``labelled``: only KT interactions (outcome not ambiguous)."""
        q = select(events).where(events.c.user_id == str(user_id))
        if labelled:
            q = q.where(events.c.outcome.is_not(None))
        if limit is not None:
            q = q.order_by(events.c.timestamp.desc(), events.c.event_id.desc()).limit(int(limit))
        else:
            q = q.order_by(events.c.timestamp, events.c.event_id)
        with self.engine.connect() as conn:
            rows = [self._event_row(r) for r in conn.execute(q)]
        if limit is not None:
            rows.reverse()
        return rows

    def consumed_among(self, user_id: str, content_ids: Iterable[str]) -> set[str]:
        """The ones of ``content_ids`` the user has an event on (one indexed query)."""
        wanted = sorted({str(c) for c in content_ids})
        if not wanted:
            return set()
        q = (select(events.c.content_id).distinct()
             .where(events.c.user_id == str(user_id), events.c.content_id.in_(wanted)))
        with self.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(q)}

    def user_ids(self) -> list[str]:
        """Every user with events or a row in the users table, sorted."""
        q = union(select(events.c.user_id), select(users_table.c.user_id))  # UNION drops repeats
        with self.engine.connect() as conn:
            return sorted(str(r[0]) for r in conn.execute(q))

    def user_event_count(self, user_id: str) -> int:
        q = select(func.count()).select_from(events).where(events.c.user_id == str(user_id))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def user_event_counts(self, user_id: str) -> tuple[int, int]:
        """(events, KT interactions) of a user in one indexed query."""
        q = select(func.count(), func.count(events.c.outcome)).select_from(events).where(events.c.user_id == str(user_id))
        with self.engine.connect() as conn:
            n_all, n_inter = conn.execute(q).one()
        return int(n_all), int(n_inter)

    # ------------------------------------------------------------------ shared path cache
    def cached_path(self, key: str) -> tuple[int, int, int, bytes] | None:
        """(n_events, catalog_seq, model_version, body) stored under ``key``, or None."""
        c = path_cache.c
        q = select(c.n_events, c.catalog_seq, c.model_version, c.body).where(c.key == key)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]), bytes(row[3]))

    def put_cached_path(self, key: str, n_events: int, catalog_seq: int, model_version: int, body: bytes) -> bool:
        """Store the entry under ``key``, replacing one planned from no more events and no later
        catalog. A stored entry with more events or a later catalog is kept: a slow writer (a
        warm-up job, a worker that planned before an ingest) does not replace a newer path with an
        older one. Both stamps only grow; the model version is not compared, since promoting an
        older version back is a valid change. Returns whether the row was written."""
        row = {"key": key, "n_events": int(n_events), "catalog_seq": int(catalog_seq),
               "model_version": int(model_version), "body": body, "updated_at": time.time()}
        ins = _INSERTS[self.dialect](path_cache)
        c = path_cache.c
        stmt = ins.on_conflict_do_update(
            index_elements=["key"], set_={k: ins.excluded[k] for k in row if k != "key"},
            where=(c.n_events <= ins.excluded.n_events) & (c.catalog_seq <= ins.excluded.catalog_seq),
        ).returning(c.key)  # a row back when written (psycopg's rowcount does not say)
        with self.engine.begin() as conn:
            return conn.execute(stmt, row).first() is not None

    def prune_cached_paths(self, before: float) -> int:
        """Drop shared learning paths last written before ``before`` (epoch seconds)."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(path_cache).where(path_cache.c.updated_at < before)).rowcount or 0)

    def clear_cached_paths(self) -> int:
        """Empty the shared path cache (benchmarks, operators); returns the rows removed."""
        with self.engine.begin() as conn:
            return int(conn.execute(delete(path_cache)).rowcount or 0)

    def user_interaction_count(self, user_id: str) -> int:
        """Events of a user that are KT interactions (outcome not ambiguous)."""
        q = (
            select(func.count()).select_from(events)
            .where(events.c.user_id == str(user_id), events.c.outcome.is_not(None))
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def interaction_counts(self, user_ids: Iterable[str]) -> dict[str, int]:
        """user_id -> number of KT interactions (outcome not ambiguous); absent users -> 0."""
        wanted = sorted({str(u) for u in user_ids})
        out = dict.fromkeys(wanted, 0)
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 1000):
                q = (
                    select(events.c.user_id, func.count()).where(events.c.user_id.in_(chunk), events.c.outcome.is_not(None))
                    .group_by(events.c.user_id)
                )
                out.update({u: int(n) for u, n in conn.execute(q)})
        return out

    def item_topics(self, content_ids: Iterable[str]) -> dict[str, str]:
        """content_id -> ``topics`` (``|``-separated, first = primary) for the known ids."""
        from kt.store.schema import items

        wanted = sorted({str(c) for c in content_ids})
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 1000):
                q = select(items.c.content_id, items.c.topics).where(items.c.content_id.in_(chunk))
                out.update({c: t for c, t in conn.execute(q)})
        return out

    def existing_ids(self, table: str, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are keys of a single-key table (``events``, ``items``, ``users``, ...)."""
        tbl = events if table == "events" else CATALOG_TABLES[table]
        (key,) = tbl.primary_key.columns
        wanted = sorted({str(i) for i in ids})
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 1000):
                found.update(conn.execute(select(key).where(key.in_(chunk))).scalars())
        return found

    def existing_keys(self, table: str, keys: Iterable[tuple]) -> set[tuple]:
        """Which composite keys (e.g. (folder_id, content_id) of ``folder_items``) are present."""
        tbl = CATALOG_TABLES[table]
        cols = list(tbl.primary_key.columns)
        wanted = sorted({tuple(str(v) for v in k) for k in keys})
        found: set[tuple] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, 500):
                q = select(*cols).where(tuple_(*cols).in_(chunk))
                found.update(tuple(r) for r in conn.execute(q))
        return found

    def iter_events(self, batch_size: int = 50_000, user_ids: Iterable[str] | None = None) -> Iterator[pd.DataFrame]:
        """The event log (optionally a few users') in (user, time) order, as DataFrames."""
        q = select(events).order_by(events.c.user_id, events.c.timestamp, events.c.event_id)
        if user_ids is not None:
            q = q.where(events.c.user_id.in_([str(u) for u in user_ids]))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(q)
            for part in result.partitions(batch_size):
                yield pd.DataFrame([self._event_row(r) for r in part], columns=[*EVENT_COLUMNS, "outcome"])

    def events_frame(self, user_ids: Iterable[str] | None = None) -> pd.DataFrame:
        parts = list(self.iter_events(user_ids=user_ids))
        if not parts:
            return pd.DataFrame(columns=[*EVENT_COLUMNS, "outcome"])
        return pd.concat(parts, ignore_index=True)

    # ------------------------------------------------------------------ catalog
    def upsert(self, table: str | Table, rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
               changes: Sequence[tuple[str, str, str | None]] = ()) -> int:
        """Insert or update rows of a catalog table by primary key; returns the row count.
        ``changes``: (kind, content_id, folder_id) entries appended to ``catalog_changes`` in
        the same transaction (see :meth:`catalog_changes_since`)."""
        return self.upsert_tables([(table, rows)], changes)[0]

    def upsert_tables(self, parts: Sequence[tuple[str | Table, Sequence[Mapping[str, Any]] | pd.DataFrame]],
                      changes: Sequence[tuple[str, str, str | None]] = ()) -> list[int]:
        """:meth:`upsert` for several tables (e.g. folders and their links) in one transaction, so
        a failure leaves none of them written; returns the row count per table."""
        statements, counts = [], []
        for table, rows in parts:
            tbl = CATALOG_TABLES[table] if isinstance(table, str) else table
            names = [c.name for c in tbl.columns]
            pk = [c.name for c in tbl.primary_key.columns]
            if isinstance(rows, pd.DataFrame):
                records = _table_records(tbl, rows)
            else:
                records = [self._catalog_record(tbl, r, names) for r in rows]
            counts.append(len(records))
            if not records:
                continue
            ins = _INSERTS[self.dialect](tbl)
            set_cols = {n: ins.excluded[n] for n in names if n not in pk}  # not `update`: that is sqlalchemy's
            stmt = (ins.on_conflict_do_update(index_elements=pk, set_=set_cols) if set_cols
                    else ins.on_conflict_do_nothing(index_elements=pk))
            statements.append((stmt, _dedup_last(records, pk)))
        now = time.time()
        log = [{"kind": k, "content_id": c, "folder_id": f, "changed_at": now} for k, c, f in changes]
        if not statements and not log:
            return counts
        with self.engine.begin() as conn:
            if log and self.dialect == "postgresql":
                # catalog writers take turns, so change numbers become visible in order: with two
                # writers at once, seq 6 could commit before seq 5, and a reader that moved past
                # 6 would never replay 5 (SQLite already admits one writer at a time)
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_WRITE_LOCK})
            for stmt, records in statements:
                for chunk in _chunks(records, 5000):
                    conn.execute(stmt, chunk)
            for chunk in _chunks(log, 5000):
                conn.execute(catalog_changes.insert(), list(chunk))
        return counts

    def catalog_seq(self) -> int:
        """The latest catalog change number (0 before any)."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(catalog_changes.c.seq))).scalar() or 0)

    def prune_catalog_changes(self, before: float) -> int:
        """Drop catalog change-log entries written before ``before`` (epoch seconds); returns how
        many. The newest of them stays, turned into a ``pruned`` marker, so the change numbers
        never go back and a process that had not applied the dropped entries sees the marker in
        :meth:`catalog_changes_since` and reloads the whole catalog instead."""
        c = catalog_changes.c
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CATALOG_WRITE_LOCK})
            through = conn.execute(select(func.max(c.seq)).where(c.changed_at < before)).scalar()
            if through is None:
                return 0
            dropped = conn.execute(delete(catalog_changes).where(c.seq < through)).rowcount or 0
            marked = conn.execute(update(catalog_changes).where(c.seq == through, c.kind != PRUNED)
                                  .values(kind=PRUNED, content_id="", folder_id=None)).rowcount or 0
            return int(dropped + marked)

    def catalog_changes_since(self, seq: int) -> list[tuple[int, str, str, str | None]]:
        """(seq, kind, content_id, folder_id) of the catalog changes after ``seq``, in order."""
        c = catalog_changes.c
        q = select(c.seq, c.kind, c.content_id, c.folder_id).where(c.seq > seq).order_by(c.seq)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(q)]

    @staticmethod
    def _catalog_record(tbl: Table, r: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
        rec = {}
        for n in names:
            v = _clean(r.get(n))
            if isinstance(tbl.c[n].type, type(events.c.timestamp.type)):
                v = to_utc(v) if v is not None else datetime.now(UTC)
            elif v is not None and not isinstance(v, (int, float)):
                v = str(v)
            rec[n] = v
        return rec

    def read_table(self, table: str) -> pd.DataFrame:
        """A whole catalog table as a DataFrame (timestamps as UTC). Rows come straight from the
        driver (no per-row SQLAlchemy processing): the items table may hold millions."""
        tbl = CATALOG_TABLES[table]
        names = [c.name for c in tbl.columns]
        with self.engine.connect() as conn:
            cur = conn.connection.dbapi_connection.cursor()
            try:
                cur.execute(f"SELECT {', '.join(names)} FROM {tbl.name}")
                rows = cur.fetchall()  # plain tuples
            finally:
                cur.close()
        df = pd.DataFrame(rows, columns=names)
        for c in tbl.columns:
            if _is_time(c):
                df[c.name] = pd.to_datetime(df[c.name], utc=True, format="ISO8601")
        return df

    def get_rows(self, table: str, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Rows of a single-key table by primary key (e.g. items by content_id)."""
        tbl = CATALOG_TABLES[table]
        (key,) = tbl.primary_key.columns
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for chunk in _chunks([str(i) for i in ids], 1000):
                out.extend(dict(r._mapping) for r in conn.execute(select(tbl).where(key.in_(chunk))))
        return out

    def counts(self) -> dict[str, int]:
        """Row counts of every table."""
        out = {}
        with self.engine.connect() as conn:
            for name, tbl in {"events": events, **CATALOG_TABLES}.items():
                out[name] = int(conn.execute(select(func.count()).select_from(tbl)).scalar_one())
        return out


def _is_time(column) -> bool:
    return isinstance(column.type, DateTime)


def _column_values(series: pd.Series, as_time: bool, default_now: datetime | None = None) -> list:
    """A column as Python values for the driver: UTC datetimes, str, int/float, None for nulls."""
    if as_time:
        ts = pd.to_datetime(series, utc=True)
        out = [None if v is pd.NaT else v for v in ts.dt.to_pydatetime().tolist()]
        return [default_now if v is None else v for v in out] if default_now is not None else out
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if hasattr(v, "item") and not isinstance(v, str) else v for v in values]


def _table_records(tbl: Table, df: pd.DataFrame) -> list[dict[str, Any]]:
    """Vectorised ``_catalog_record`` for a DataFrame (world loads: millions of rows)."""
    now = datetime.now(UTC)
    cols = {}
    for c in tbl.columns:
        if c.name not in df.columns:
            cols[c.name] = [now if _is_time(c) else None] * len(df)
        elif _is_time(c):
            cols[c.name] = _column_values(df[c.name], True, now)
        else:
            vals = _column_values(df[c.name], False)
            cols[c.name] = [v if v is None or isinstance(v, (int, float)) else str(v) for v in vals]
    names = list(cols)
    return [dict(zip(names, row, strict=True)) for row in zip(*cols.values(), strict=True)]


def _frame_records(df: pd.DataFrame, now: datetime) -> Iterator[dict[str, Any]]:
    """Vectorised ``_event_record`` for a DataFrame of events."""
    ids = df["event_id"].astype(str).tolist()
    users = df["user_id"].astype(str).tolist()
    contents = df["content_id"].astype(str).tolist()
    times = _column_values(df["timestamp"], True)
    folders = (_column_values(df["folder_id"], False) if "folder_id" in df.columns else [None] * len(df))
    signals = {k: (_column_values(df[k], False) if k in df.columns else [None] * len(df)) for k in SIGNAL_COLUMNS}
    outcome = _column_values(df["outcome"], False) if "outcome" in df.columns else [None] * len(df)
    for i in range(len(df)):
        yield {
            "event_id": ids[i], "user_id": users[i], "content_id": contents[i], "timestamp": times[i],
            "folder_id": None if folders[i] is None else str(folders[i]),
            "signals": {k: v[i] for k, v in signals.items()},
            "outcome": None if outcome[i] is None else int(outcome[i]),
            "ingested_at": now,
        }


def _chunks(seq: Sequence, n: int) -> Iterator[Sequence]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _dedup_last(records: list[dict[str, Any]], pk: list[str]) -> list[dict[str, Any]]:
    """Keep the last row per key: PostgreSQL refuses to update one row twice in a statement."""
    by_key = {tuple(r[k] for k in pk): r for r in records}
    return list(by_key.values())
