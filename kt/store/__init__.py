"""Event/catalog store: the event log (source of truth) and the catalog, SQLite or PostgreSQL."""

from kt.store.store import EVENT_COLUMNS, SIGNAL_COLUMNS, EventStore, IngestResult, normalize_url, to_utc

__all__ = ["EVENT_COLUMNS", "SIGNAL_COLUMNS", "EventStore", "IngestResult", "normalize_url", "to_utc"]
