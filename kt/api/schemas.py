"""Request and response bodies of the /v1 API (pydantic). Field names follow the data contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from kt.data.schema import FUTURE_TOLERANCE, ID_FORBIDDEN_CHARS, KINDS, MAX_ID_LENGTH, MIN_TIMESTAMP

# ids follow the data contract's id rule; texts: no NUL (PostgreSQL text cannot hold it)
ID_PATTERN = f"^[^{ID_FORBIDDEN_CHARS}]+$"
Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"^[^\x00]+$")]


def _plausible_time(value: datetime) -> datetime:
    """The contract's timestamp range, as for files: naive means UTC; not before 1990, not in the future."""
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts < MIN_TIMESTAMP or ts > pd.Timestamp.now(tz="UTC") + FUTURE_TOLERANCE:
        raise ValueError(f"impossible timestamp {value.isoformat()} (before {MIN_TIMESTAMP.date()} or in the future)")
    return ts.to_pydatetime()


Time = Annotated[datetime, AfterValidator(_plausible_time)]

EVENT_FIELDS_DOC = (
    "Each event is an object with the data contract's event fields: event_id (str, unique), user_id (str), "
    "content_id (str, a catalog item), timestamp (ISO 8601, UTC if no offset), folder_id (str or null), "
    "read_fraction (float in [0, 1]), dwell_seconds (float >= 0), n_highlights (int >= 0), quiz_correct "
    "(1.0, 0.0 or null). Events are validated one by one: invalid ones are reported in `errors`, the others "
    "are stored."
)

EXAMPLE_EVENT = {
    "event_id": "ev-0001", "user_id": "u00001", "content_id": "c00042", "timestamp": "2026-01-20T10:15:00Z",
    "folder_id": None, "read_fraction": 0.9, "dwell_seconds": 120.0, "n_highlights": 3, "quiz_correct": None,
}


class EventBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # items are untyped on purpose: one bad event (even one that is not an object) must not reject
    # the whole batch, so checks happen per item (kt.data.io.validate_events), not in this model
    events: list[Annotated[Any, WithJsonSchema({"type": "object"})]] = Field(
        description=EVENT_FIELDS_DOC, json_schema_extra={"example": [EXAMPLE_EVENT]})


class ItemError(BaseModel):
    index: int = Field(description="Position of the item in the request list.")
    field: str
    reason: str


class IngestResponse(BaseModel):
    accepted: int = Field(description="Events newly stored (durably committed).")
    duplicates: int = Field(description="Events whose event_id was already stored (or repeated in the batch).")
    rejected: int = Field(description="Events that failed validation; see errors.")
    duplicate_ids: list[str] = []
    errors: list[ItemError] = []


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content_id: Id
    title: Text
    url: Text
    language: str = Field(pattern=r"^[a-z]{2}$", description="ISO 639-1 code.")
    topics: list[Id] = Field(min_length=1, max_length=16, description="Topic ids, first = primary.")
    difficulty: float = Field(ge=0.0, le=1.0)
    kind: Literal[KINDS] = "article"  # type: ignore[valid-type]
    created_at: Time | None = Field(default=None, description="Defaults to now (for an update: the stored value).")


class ItemBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn]


class FolderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder_id: Id
    user_id: Id
    name: Text
    created_at: Time | None = Field(default=None, description="Defaults to now (for an update: the stored value).")
    items: list[Id] = Field(default=[], max_length=10_000,
                            description="content_ids to file into the folder (added; items filed before stay).")


class FolderBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folders: list[FolderIn]


class UpsertResponse(BaseModel):
    upserted: int = Field(description="Rows inserted or updated.")
    new: int = Field(description="Of which new (now recommendable at once for items).")
    errors: list[ItemError] = []


class TopicMastery(BaseModel):
    topic_id: str
    name: str | None = None
    mastery: float
    confidence: float
    n_obs: int
    stage: str
    last_practiced: datetime | None = None
    progress: float | None = Field(None, description="Mastery gained over the topic's last practices (the "
                                   "tracker's progress_window); null until it has one practice more than that. Below the planner's "
                                   "min_progress the topic is stalled and planned after the others.")


class MasteryResponse(BaseModel):
    user_id: str
    model_version: int
    n_events: int = Field(description="The user's stored events with an outcome (the interactions the KT model has "
                                      "seen); events the outcome rule finds ambiguous are stored but not counted.")
    topics: list[TopicMastery]


class Health(BaseModel):
    status: str
    model_version: int | None = None
    store: bool | None = None
    detail: dict[str, Any] | None = None


class PathItem(BaseModel):
    content_id: str
    topic_id: str
    stage: str
    predicted_success: float | None
    source: str = Field(description="pixie | topic_index | fresh (no folder edges yet) | review")
    visits: int
    language: str
    kind: str
    difficulty: float
    reason: str


class PathBundle(BaseModel):
    topic_id: str
    topic_name: str
    source: str = Field(description="Why this topic: ready | review | goal.")
    stage: str
    mastery: float | None
    reason: str
    band: list[float] = Field(description="Band of predicted success the items were drawn from.")
    items: list[PathItem]


class PathResponse(BaseModel):
    user_id: str
    model_version: int
    bundles: list[PathBundle]
    languages: list[str]
    goal_topics: list[str]
    n_walk_candidates: int
    walk_steps: int
