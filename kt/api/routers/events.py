"""POST /v1/events: batch ingest of highlight events.

Per event: unknown fields, text that cannot be stored (NUL, lone surrogates) and ids that are
not ids (the contract's id rule, :data:`kt.data.schema.MAX_ID_LENGTH`) -> rejected;
contract validation (:func:`kt.data.io.validate_events`: types, ranges, timestamps, known
content_id) -> rejected with (index, field, reason); a later copy of an event_id whose first
*valid* copy is in the batch -> duplicate (an invalid first copy never makes a valid repeat a
"duplicate", which would acknowledge an event that was never stored); the outcome rule labels
the rest; one transaction stores them
with ON CONFLICT (event_id) DO NOTHING (already stored -> duplicate) and commits *before* the
response, so an acknowledged event survives a crash. Finally the served tracker absorbs the
new interactions, so the next mastery/path request sees them; if that step fails the events
are still stored, and the tracker catches up from the event log on the user's next request.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Depends, HTTPException

from kt.api.deps import get_services
from kt.api.schemas import EventBatch, IngestResponse, ItemError
from kt.api.services import Services
from kt.data.io import validate_events
from kt.data.schema import EVENTS, ID_FORBIDDEN, ID_RULE, MAX_ID_LENGTH
from kt.store.loader import event_outcomes

router = APIRouter(tags=["events"])
EVENT_FIELDS = frozenset(EVENTS.column_names)
ID_FIELDS = frozenset({"event_id", "user_id", "content_id", "folder_id"})
# checked before the contract validation, so one 100 kB "id" never sizes the whole batch's arrays
MAX_INT_ID = 10**MAX_ID_LENGTH  # an integer id with more digits than the id rule allows
CONTROL = re.compile(ID_FORBIDDEN)
JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
              type(None): "null"}
log = logging.getLogger("kt.api")


@router.post(
    "/events", response_model=IngestResponse,
    summary="Ingest a batch of highlight events (idempotent by event_id, validated per item).",
)
def ingest_events(batch: EventBatch, services: Services = Depends(get_services)) -> IngestResponse:
    limit = services.config.max_batch_events
    if len(batch.events) > limit:
        raise HTTPException(status_code=422, detail=f"batch of {len(batch.events)} events exceeds the limit of {limit}; split it")
    raw = batch.events
    unfit = {i: problem for i, ev in enumerate(raw) if (problem := _unfit_field(ev)) is not None}
    keep = [i for i in range(len(raw)) if i not in unfit]
    candidates = [raw[i] for i in keep]
    content_ids = {str(ev.get("content_id")) for ev in candidates if isinstance(ev.get("content_id"), (str, int))}
    known = services.store.existing_ids("items", content_ids)
    accepted, rejected = validate_events(candidates, known_content_ids=known, seen_event_ids=None)
    # a repeat of an event_id whose first valid copy is accepted here: idempotent, not an error
    repeated = [_event_id(candidates[r["index"]]) for r in rejected if r["code"] == "duplicate_key"]
    errors = [ItemError(index=keep[r["index"]], field=r["field"], reason=r["reason"])
              for r in rejected if r["code"] != "duplicate_key"]
    errors += [ItemError(index=i, field=f, reason=reason) for i, (f, reason) in unfit.items()]

    inserted: list[str] = []
    duplicates = list(repeated)
    if len(accepted):
        accepted = accepted.assign(outcome=event_outcomes(accepted, services.rule))
        result = services.store.insert_events(accepted)
        inserted, duplicates = result.inserted, result.duplicates + duplicates
        _update_mastery(services, accepted[accepted["event_id"].isin(set(inserted))])

    m = services.metrics.events
    m.labels("accepted").inc(len(inserted))
    m.labels("duplicate").inc(len(duplicates))
    m.labels("rejected").inc(len(errors))
    return IngestResponse(
        accepted=len(inserted), duplicates=len(duplicates), rejected=len(errors),
        duplicate_ids=duplicates, errors=sorted(errors, key=lambda e: e.index),
    )


def _event_id(ev: dict) -> str:
    return str(ev.get("event_id"))


def _unfit_field(ev: object) -> tuple[str, str] | None:
    """(field, reason) for the first field no store could take: an unknown name (a misspelt field
    would silently lose its value, e.g. quizCorrect, and change the outcome), text with NUL
    (PostgreSQL text cannot hold it) or a lone surrogate (not encodable as UTF-8), or an id that
    is too long or holds control characters."""
    if not isinstance(ev, dict):
        return "-", f"not an event object (got {JSON_TYPES.get(type(ev), type(ev).__name__)})"
    for field, value in ev.items():
        if field not in EVENT_FIELDS:
            return _printable(field), f"unknown field; the fields are {', '.join(EVENTS.column_names)}"
        if field in ID_FIELDS and isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_INT_ID:
            return field, f"not an id: {ID_RULE}"
        if isinstance(value, str):
            if "\x00" in value:
                return field, "contains a NUL character"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return field, "not valid UTF-8 text (a lone surrogate)"
            if field in ID_FIELDS and (len(value) > MAX_ID_LENGTH or CONTROL.search(value)):
                return field, f"not an id: {ID_RULE}"
    return None


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:60]


def _update_mastery(services: Services, new_events) -> None:
    """Let the served tracker absorb the newly stored events (the log stays the truth: a
    failure here only means the user is rebuilt from the log on their next read)."""
    learner = services.learner()
    if learner is None or not len(new_events):
        return
    try:
        learner.after_ingest(new_events)
    except Exception as exc:
        log.warning("mastery update after ingest failed (rebuilt from the event log on next read): %s", exc,
                    exc_info=exc)
