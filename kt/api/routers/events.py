"""POST /v1/events: batch ingest of highlight events.

Per event, in order: repeated event_id inside the batch -> duplicate; contract validation
(:func:`kt.data.io.validate_events`: types, ranges, timestamps, known content_id) -> rejected
with (index, field, reason); the outcome rule labels the rest; one transaction stores them
with ON CONFLICT (event_id) DO NOTHING (already stored -> duplicate) and commits *before* the
response, so an acknowledged event survives a crash. Finally the served tracker absorbs the
new interactions, so the next mastery/path request sees them; if that step fails the events
are still stored, and the tracker catches up from the event log on the user's next request.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException

from kt.api.deps import get_services
from kt.api.schemas import EventBatch, IngestResponse, ItemError
from kt.api.services import Services
from kt.data.io import validate_events
from kt.store.loader import event_outcomes

router = APIRouter(tags=["events"])
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
    # repeats of an event_id inside the batch: the first copy is processed, later ones are duplicates
    seen: set[str] = set()
    keep: list[int] = []
    repeated: list[str] = []
    for i, ev in enumerate(raw):
        eid = ev.get("event_id")
        key = str(eid) if isinstance(eid, (str, int)) and not isinstance(eid, bool) else None
        if key is not None and key in seen:
            repeated.append(key)
            continue
        if key is not None:
            seen.add(key)
        keep.append(i)
    # NUL cannot be stored in PostgreSQL text and has no business in an id or signal
    nul = {i: f for i in keep for f, v in raw[i].items() if isinstance(v, str) and "\x00" in v}
    keep = [i for i in keep if i not in nul]
    candidates = [raw[i] for i in keep]
    content_ids = {str(ev.get("content_id")) for ev in candidates if isinstance(ev.get("content_id"), (str, int))}
    known = services.store.existing_ids("items", content_ids)
    accepted, rejected = validate_events(candidates, known_content_ids=known, seen_event_ids=None)
    errors = [ItemError(index=keep[r["index"]], field=r["field"], reason=r["reason"]) for r in rejected]
    errors += [ItemError(index=i, field=str(f), reason="contains a NUL character") for i, f in nul.items()]

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
