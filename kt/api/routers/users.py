"""GET /v1/users/{user_id}/mastery and /v1/users/{user_id}/path.

Both read the served champion once (a hot swap never splits a request). Mastery comes from
the tracker, caught up with the event log first (:class:`kt.api.learner.ServedLearner`); the
path from :meth:`kt.planner.Planner.plan` under the world's read lock.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

import anyio
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from starlette.background import BackgroundTask

from kt.api.deps import get_served, get_services
from kt.api.model_service import Served
from kt.api.path_cache import PathEntry
from kt.api.schemas import MasteryResponse, PathBundle, PathItem, PathResponse, TopicMastery
from kt.api.services import Services

router = APIRouter(tags=["users"])

LANGUAGE = re.compile(r"[a-z]{2}")

UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$", description="The user's id.",
                                   examples=["u000"])]


def _finite(value: Any) -> Any:
    """NaN/inf -> None (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _require_known(services: Services, user_id: str, n_events: int) -> None:
    if n_events == 0 and not services.store.existing_ids("users", [user_id]) and not services.store.user_event_count(user_id):
        raise HTTPException(status_code=404, detail=f"unknown user {user_id!r} (no events, not in the users table)")


@router.get("/users/{user_id}/mastery", response_model=MasteryResponse,
            summary="Per-topic mastery, confidence and stage (new, learning, needs_review, mastered).",
            responses={404: {"description": "Unknown user."}, 503: {"description": "No model loaded yet."}})
async def user_mastery(user_id: UserId, services: Services = Depends(get_services),
                       served: Served = Depends(get_served)) -> MasteryResponse:
    # CPU-bound: requests take turns (ApiConfig.plan_concurrency), waiting on the event loop
    return await anyio.to_thread.run_sync(_user_mastery, user_id, services, served, limiter=services.plan_limiter)


def _user_mastery(user_id: str, services: Services, served: Served) -> MasteryResponse:
    learner = served.extras["learner"]
    n = learner.sync(user_id)
    _require_known(services, user_id, n)
    frame = learner.topic_mastery(user_id)
    catalog = services.world.planner.catalog
    topics = []
    for row in frame.itertuples(index=False):
        last = row.last_practiced
        topics.append(TopicMastery(
            topic_id=row.topic_id, name=catalog.topic_name(row.topic_id),
            mastery=_finite(float(row.mastery)) if row.mastery is not None else None,
            confidence=float(row.confidence), n_obs=int(row.n_obs), stage=str(row.stage),
            last_practiced=None if last is None or pd.isna(last) else last.to_pydatetime(),
        ))
    return MasteryResponse(user_id=user_id, model_version=served.version, n_events=n, topics=topics)


@router.get("/users/{user_id}/path", response_model=PathResponse,
            summary="A learning path: ordered bundles of items, each with the reason it was chosen.",
            responses={404: {"description": "Unknown user."}, 503: {"description": "No model loaded yet."}})
async def user_path(
    user_id: UserId,
    bundles: Annotated[int, Query(ge=1, le=10, description="Number of bundles.")] = 3,
    size: Annotated[int, Query(ge=1, le=20, description="Items per bundle.")] = 5,
    lang: Annotated[list[str] | None, Query(max_length=20, description="ISO 639-1 languages (default: the user's).")] = None,
    goal: Annotated[list[str] | None, Query(max_length=50, description="Goal topic ids to work towards.")] = None,
    services: Services = Depends(get_services),
    served: Served = Depends(get_served),
) -> PathResponse:
    # CPU-bound: requests take turns (ApiConfig.plan_concurrency), waiting on the event loop
    return await anyio.to_thread.run_sync(_user_path, user_id, bundles, size, lang, goal, services, served,
                                          limiter=services.plan_limiter)


def _user_path(user_id: str, bundles: int, size: int, lang: list[str] | None, goal: list[str] | None,
               services: Services, served: Served) -> Response:
    services.sync_catalog()  # catalog changes made through other worker processes
    n_all, n_inter = services.store.user_event_counts(user_id)
    learner, n = served.extras["learner"].pinned(user_id, n_inter)
    _require_known(services, user_id, n_all)
    bad = [x for x in (lang or []) if not LANGUAGE.fullmatch(x)]
    if bad:
        raise HTTPException(status_code=422, detail=f"lang: not ISO 639-1 code(s): {', '.join(map(repr, bad))}")
    world = services.world
    if goal:
        unknown = sorted(set(goal) - world.known_topics())
        if unknown:
            raise HTTPException(status_code=422, detail=f"goal: unknown topic id(s): {', '.join(map(repr, unknown))}")
    # the catalog version is read before planning: an update landing mid-plan leaves an entry
    # stamped with the old version, which the next read recomputes
    # the languages planned with are in the key, also when they come from the users table
    languages = lang or services.user_languages(user_id)
    key = (user_id, bundles, size, tuple(languages or ()), tuple(goal or ()))
    catalog_version = world.seq  # the store's change number: the same in every caught-up process
    # every event counts (n_all), not only those with an outcome: all of them seed the walk
    # and mark items as consumed
    cached = services.paths.get(key, n_all, catalog_version, served.version)
    if cached is not None:
        body, level = cached
        return Response(content=body, media_type="application/json", headers={"X-Path-Cache": level})
    history = pd.DataFrame(services.store.user_events(user_id, limit=services.config.history_limit))
    if len(history):
        history = history[["content_id", "timestamp"]]
    with world.lock.read():
        path = world.planner.plan(user_id, learner, history if len(history) else None, n_bundles=bundles,
                                  bundle_size=size, languages=languages, goal_topics=goal)
    body = _path_response(path, served.version).model_dump_json().encode()
    entry = PathEntry(n_all, catalog_version, served.version, body)
    services.paths.put(key, entry, share=False)
    # the store write happens after the response, outside this request's planning turn
    return Response(content=body, media_type="application/json", headers={"X-Path-Cache": "miss"},
                    background=BackgroundTask(services.paths.share, key, entry))


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _path_response(path, version: int) -> PathResponse:
    """The planner's LearningPath as the response model, field by field (``dataclasses.asdict``
    deep-copies every item and costs more than the rest of the response)."""
    bundles = [
        PathBundle(
            topic_id=b.topic_id, topic_name=b.topic_name, source=b.source, stage=b.stage, mastery=_num(b.mastery),
            reason=b.reason, band=[float(x) for x in b.band],
            items=[PathItem(content_id=i.content_id, topic_id=i.topic_id, stage=i.stage,
                            predicted_success=_num(i.predicted_success), source=i.source, visits=int(i.visits),
                            language=i.language, kind=i.kind, difficulty=float(i.difficulty), reason=i.reason)
                   for i in b.items],
        )
        for b in path.bundles
    ]
    return PathResponse(user_id=path.user_id, model_version=version, bundles=bundles, languages=list(path.languages),
                        goal_topics=list(path.goal_topics), n_walk_candidates=int(path.n_walk_candidates),
                        walk_steps=int(path.walk_steps))
