"""Arrow schemas of the world directory (docs/ARCHITECTURE.md, "Data contract") and builders
that turn the simulator's index arrays into those tables.

String columns are built with ``take`` on a small dictionary (topic ids, languages, kinds)
rather than Python lists where possible, so writing millions of rows stays cheap.
Parquet files are written without pandas metadata and with fixed writer options, so the
same arrays always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TS = pa.timestamp("us", tz="UTC")

TOPICS = pa.schema([("topic_id", pa.string()), ("name", pa.string()), ("parent_id", pa.string())])
PREREQUISITES = pa.schema([("topic_id", pa.string()), ("prerequisite_id", pa.string())])
ITEMS = pa.schema(
    [
        ("content_id", pa.string()),
        ("title", pa.string()),
        ("url", pa.string()),
        ("language", pa.string()),
        ("topics", pa.string()),
        ("difficulty", pa.float64()),
        ("kind", pa.string()),
        ("created_at", TS),
    ]
)
FOLDERS = pa.schema([("folder_id", pa.string()), ("user_id", pa.string()), ("name", pa.string()), ("created_at", TS)])
FOLDER_ITEMS = pa.schema([("folder_id", pa.string()), ("content_id", pa.string()), ("added_at", TS)])
USERS = pa.schema([("user_id", pa.string()), ("languages", pa.string()), ("created_at", TS)])
EVENTS = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("content_id", pa.string()),
        ("timestamp", TS),
        ("folder_id", pa.string()),
        ("read_fraction", pa.float64()),
        ("dwell_seconds", pa.float64()),
        ("n_highlights", pa.int64()),
        ("quiz_correct", pa.float64()),
    ]
)
TRUE_MASTERY = pa.schema(
    [("user_id", pa.string()), ("topic_id", pa.string()), ("timestamp", TS), ("mastery", pa.float64())]
)
# simulator-only: the learner state at the end of the period, to resume in LearnerEnv
LEARNER_STATE = pa.schema(
    [
        ("user_id", pa.string()),
        ("mastery", pa.list_(pa.float64())),
        ("last_practice", pa.list_(pa.float64())),
        ("n_practice", pa.list_(pa.int32())),
        ("floor", pa.list_(pa.float64())),
        ("n_events", pa.int64()),
        ("clock", pa.float64()),
    ]
)

WRITE_OPTIONS = {"compression": "zstd", "use_dictionary": True, "write_statistics": True}


def timestamps(start_us: int, seconds: np.ndarray) -> pa.Array:
    """Seconds since day 0 -> UTC timestamp array (microseconds)."""
    us = np.int64(start_us) + np.round(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    return pa.array(us, type=pa.int64()).cast(TS)


def take(dictionary: list[str] | pa.Array, idx: np.ndarray, null_below_zero: bool = False) -> pa.Array:
    """Strings ``dictionary[idx]``; with ``null_below_zero``, negative indices become nulls."""
    d = dictionary if isinstance(dictionary, pa.Array) else pa.array(dictionary, type=pa.string())
    idx = np.asarray(idx, dtype=np.int64)
    if null_below_zero:
        return d.take(pa.array(np.maximum(idx, 0), mask=idx < 0))
    return d.take(pa.array(idx))


def write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **WRITE_OPTIONS)


class PartWriter:
    """Streams row groups of one schema into one Parquet file (opened lazily, closed explicitly)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema, self._writer, self.rows = path, schema, None, 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, **WRITE_OPTIONS)
        self._writer.write_table(table.cast(self.schema))
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is None:  # an empty file still carries the schema
            write_table(self.schema.empty_table(), self.path)
        else:
            self._writer.close()
