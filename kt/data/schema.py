"""The data contract of docs/ARCHITECTURE.md as code.

One declarative :class:`TableSchema` per table of a world directory. ``kt.data.io`` validates every
loaded file against these, so the contract lives in exactly one place. Ids are strings at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

ColumnType = Literal["str", "float", "int", "timestamp", "bool"]

# Timestamps before this are impossible for highlight logs (and usually a unit mistake: ms read as s).
MIN_TIMESTAMP = pd.Timestamp("1990-01-01", tz="UTC")
# Clock skew tolerated for timestamps in the future.
FUTURE_TOLERANCE = pd.Timedelta(hours=1)
LIST_SEPARATOR = "|"
# One rule for ids everywhere (files, the API, the store's id columns, which are this wide): at most
# MAX_ID_LENGTH characters and no control characters, which break log lines, URLs and CSV rows.
MAX_ID_LENGTH = 128
ID_FORBIDDEN_CHARS = r"\x00-\x1f\x7f"
ID_FORBIDDEN = f"[{ID_FORBIDDEN_CHARS}]"
ID_RULE = f"at most {MAX_ID_LENGTH} characters, no control characters (newlines, tabs)"


class DataError(ValueError):
    """A file-level data problem. ``str(exc)`` is one line: ``path:row: field: reason``.

    row is the 1-based data row (header excluded) for CSV tables, the 1-based line for the KT
    line formats, or None when the problem is the file as a whole.
    """

    def __init__(self, file: str | Path, row: int | None, field: str | None, reason: str):
        self.file, self.row, self.field, self.reason = str(file), row, field or "-", reason
        super().__init__(f"{self.file}:{row if row is not None else '-'}: {self.field}: {reason}")


@dataclass(frozen=True)
class Column:
    """One column: type, nullability and value constraints (closed range [min, max], choices, regex).

    ``is_list``: a ``|``-separated list of values (e.g. ``items.topics``); constraints apply per element.
    ``is_id``: the values are ids and follow the id rule (:data:`MAX_ID_LENGTH`, no control characters).
    """

    name: str
    dtype: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    pattern: str | None = None
    is_list: bool = False
    is_id: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``column`` values (each element when a list) must exist in ``table.ref_column``."""

    column: str
    table: str
    ref_column: str

    @property
    def target(self) -> str:
        return f"{self.table}.{self.ref_column}"


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    required_table: bool = True

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def primary_topics(topics: pd.Series) -> pd.Series:
    """The primary topic of each ``items.topics`` value: its first ``|``-separated element, stripped
    as the contract reads list elements (``"t1 | t2"`` is t1). One rule for every layer: copies of
    it that forgot the strip misread such items."""
    return topics.astype(str).str.split(LIST_SEPARATOR, n=1).str[0].str.strip()


KINDS = ("article", "paper", "video", "book", "podcast")

TOPICS = TableSchema(
    "topics",
    (Column("topic_id", "str", is_id=True), Column("name", "str"), Column("parent_id", "str", nullable=True, is_id=True)),
    key=("topic_id",),
    foreign_keys=(ForeignKey("parent_id", "topics", "topic_id"),),
)
PREREQUISITES = TableSchema(
    "prerequisites",
    (Column("topic_id", "str", is_id=True), Column("prerequisite_id", "str", is_id=True)),
    key=("topic_id", "prerequisite_id"),
    foreign_keys=(ForeignKey("topic_id", "topics", "topic_id"), ForeignKey("prerequisite_id", "topics", "topic_id")),
    required_table=False,
)
ITEMS = TableSchema(
    "items",
    (
        Column("content_id", "str", is_id=True),
        Column("title", "str"),
        Column("url", "str"),
        Column("language", "str", pattern=r"[a-z]{2}"),
        Column("topics", "str", is_list=True, is_id=True),
        Column("difficulty", "float", min=0.0, max=1.0),
        Column("kind", "str", choices=KINDS),
        Column("created_at", "timestamp"),
    ),
    key=("content_id",),
    foreign_keys=(ForeignKey("topics", "topics", "topic_id"),),
)
USERS = TableSchema(
    "users",
    (
        Column("user_id", "str", is_id=True),
        Column("languages", "str", is_list=True, pattern=r"[a-z]{2}"),
        Column("created_at", "timestamp"),
    ),
    key=("user_id",),
)
FOLDERS = TableSchema(
    "folders",
    (Column("folder_id", "str", is_id=True), Column("user_id", "str", is_id=True), Column("name", "str"), Column("created_at", "timestamp")),
    key=("folder_id",),
    foreign_keys=(ForeignKey("user_id", "users", "user_id"),),
    required_table=False,
)
FOLDER_ITEMS = TableSchema(
    "folder_items",
    (Column("folder_id", "str", is_id=True), Column("content_id", "str", is_id=True), Column("added_at", "timestamp")),
    key=("folder_id", "content_id"),
    foreign_keys=(ForeignKey("folder_id", "folders", "folder_id"), ForeignKey("content_id", "items", "content_id")),
    required_table=False,
)
EVENTS = TableSchema(
    "events",
    (
        Column("event_id", "str", is_id=True),
        Column("user_id", "str", is_id=True),
        Column("content_id", "str", is_id=True),
        Column("timestamp", "timestamp"),
        Column("folder_id", "str", nullable=True, is_id=True),
        Column("read_fraction", "float", min=0.0, max=1.0),
        Column("dwell_seconds", "float", min=0.0),
        Column("n_highlights", "int", min=0),
        Column("quiz_correct", "float", nullable=True, choices=(0.0, 1.0)),
    ),
    key=("event_id",),
    foreign_keys=(
        ForeignKey("user_id", "users", "user_id"),
        ForeignKey("content_id", "items", "content_id"),
        ForeignKey("folder_id", "folders", "folder_id"),
    ),
)

# Dependency order: every foreign key points to a table earlier in this tuple (or to itself).
LOAD_ORDER: tuple[TableSchema, ...] = (TOPICS, PREREQUISITES, ITEMS, USERS, FOLDERS, FOLDER_ITEMS, EVENTS)
SCHEMAS: dict[str, TableSchema] = {s.name: s for s in LOAD_ORDER}


def get_schema(name: str) -> TableSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown table {name!r}; known: {', '.join(SCHEMAS)}") from None
