"""Tables of the event/catalog store: one SQLAlchemy Core schema for SQLite and PostgreSQL.

The event log is the source of truth. Mastery states kept by :mod:`kt.mastery` are a cache
of it and can always be rebuilt from ``events``. Ids are strings everywhere (the data
contract in docs/ARCHITECTURE.md); timestamps are stored as UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
)

from kt.data.schema import MAX_ID_LENGTH

metadata = MetaData()

ID = String(MAX_ID_LENGTH)  # the data contract's id rule; longer ids are rejected before they get here

events = Table(
    "events",
    metadata,
    Column("event_id", ID, primary_key=True),
    Column("user_id", ID, nullable=False),
    Column("content_id", ID, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("folder_id", ID, nullable=True),
    # read_fraction, dwell_seconds, n_highlights, quiz_correct: kept as sent so the outcome
    # rule can be changed and re-applied later.
    Column("signals", JSON, nullable=False),
    # 1 understood / 0 not understood by the outcome rule; NULL when the rule finds the signals
    # ambiguous (the event is kept in the log but is not a KT interaction)
    Column("outcome", SmallInteger, nullable=True),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    # a user's history is read in time order on every mastery rebuild
    Index("ix_events_user_time", "user_id", "timestamp"),
)

items = Table(
    "items",
    metadata,
    Column("content_id", ID, primary_key=True),
    Column("title", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("language", String(16), nullable=False),
    Column("topics", Text, nullable=False),  # "|"-separated topic ids, first = primary
    Column("difficulty", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

folders = Table(
    "folders",
    metadata,
    Column("folder_id", ID, primary_key=True),
    Column("user_id", ID, nullable=False),
    Column("name", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

folder_items = Table(
    "folder_items",
    metadata,
    Column("folder_id", ID, nullable=False),
    Column("content_id", ID, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("folder_id", "content_id"),
)

topics = Table(
    "topics",
    metadata,
    Column("topic_id", ID, primary_key=True),
    Column("name", Text, nullable=False),
    Column("parent_id", ID, nullable=True),
)

prerequisites = Table(
    "prerequisites",
    metadata,
    Column("topic_id", ID, nullable=False),
    Column("prerequisite_id", ID, nullable=False),
    PrimaryKeyConstraint("topic_id", "prerequisite_id"),
)

users = Table(
    "users",
    metadata,
    Column("user_id", ID, primary_key=True),
    Column("languages", Text, nullable=False),  # "|"-separated ISO 639-1 codes
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Every catalog write through the API appends here, in the same transaction: each API worker
# process replays the changes it has not seen into its in-memory planner world, so an item
# added or edited through one worker reaches all of them.
PRUNED = "pruned"  # marks where older entries were dropped (EventStore.prune_catalog_changes)
catalog_changes = Table(
    "catalog_changes",
    metadata,
    # BigInteger on PostgreSQL, INTEGER on SQLite (the rowid alias that autoincrements)
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "item" | "folder_item" | PRUNED
    Column("content_id", ID, nullable=False),
    Column("folder_id", ID),
    Column("changed_at", Float, nullable=False),
)

# Learning paths shared by every API worker process (kt.api.path_cache): one row per request
# key (a digest of user and parameters), valid while its three stamps match the current ones.
path_cache = Table(
    "path_cache",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("n_events", BigInteger, nullable=False),
    Column("catalog_seq", BigInteger, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),  # zlib-compressed JSON response body
    Column("updated_at", Float, nullable=False),
)

CATALOG_TABLES = {
    "topics": topics,
    "prerequisites": prerequisites,
    "items": items,
    "folders": folders,
    "folder_items": folder_items,
    "users": users,
}
