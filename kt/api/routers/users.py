"""GET /v1/users/{user_id}/mastery and /v1/users/{user_id}/path.

Both read the served champion once (a hot swap never splits a request). Mastery comes from
the tracker, caught up with the event log first (:class:`kt.api.learner.ServedLearner`). The
path is looked up in the path cache first (:func:`kt.api.paths.cached_path`); a path a few events
behind is served stale and re-planned in the background (:mod:`kt.api.refresh`); anything else
is planned for the request in a planning turn (:func:`kt.api.paths.plan_path`).

A user id may contain "/" (``{user_id:path}``): ingest accepts any id the contract allows, so
every acknowledged user must be readable here, raw or percent-encoded.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import anyio
import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Response
from starlette.background import BackgroundTask

from kt.api.deps import get_served, get_services
from kt.api.model_service import Served
from kt.api.paths import PathRequest, PathResult, cached_path, path_request, plan_path, require_known
from kt.api.schemas import ID_PATTERN, MasteryResponse, PathResponse, TopicMastery
from kt.api.services import Services
from kt.data.schema import MAX_ID_LENGTH

router = APIRouter(tags=["users"])

UserId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN, description="The user's id.",
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


@router.get("/users/{user_id:path}/mastery", response_model=MasteryResponse,
            summary="Per-topic mastery, confidence and stage (new, learning, needs_review, mastered).",
            responses={404: {"description": "Unknown user."}, 503: {"description": "No model loaded yet."}})
async def user_mastery(user_id: UserId, services: Services = Depends(get_services),
                       served: Served = Depends(get_served)) -> MasteryResponse:
    # CPU-bound: requests take turns (ApiConfig.plan_concurrency), waiting on the event loop
    return await anyio.to_thread.run_sync(_user_mastery, user_id, services, served, limiter=services.plan_limiter)


def _user_mastery(user_id: str, services: Services, served: Served) -> MasteryResponse:
    learner = served.extras["learner"]
    n = learner.sync(user_id)
    require_known(services, user_id, n)
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
            progress=_finite(float(row.progress)) if getattr(row, "progress", None) is not None else None,
        ))
    return MasteryResponse(user_id=user_id, model_version=served.version, n_events=n, topics=topics)


@router.get("/users/{user_id:path}/path", response_model=PathResponse,
            summary="A learning path: ordered bundles of items, each with the reason it was chosen.",
            responses={
                200: {"headers": {
                    "X-Path-Cache": {"description": "hit | shared | stale | miss: where the path came from.",
                                     "schema": {"type": "string"}},
                    "X-Path-Events-Behind": {"description": "With stale: how many of the user's events the path "
                                                            "was planned without.", "schema": {"type": "integer"}},
                }},
                404: {"description": "Unknown user."}, 503: {"description": "No model loaded yet."}})
async def user_path(
    user_id: UserId,
    bundles: Annotated[int, Query(ge=1, le=10, description="Number of bundles.")] = 3,
    size: Annotated[int, Query(ge=1, le=1000, description="Items per bundle, within the planner's bundle limits "
                                                           "(PlannerConfig.min_bundle..max_bundle, 3..10 by default).")] = 5,
    lang: Annotated[list[str] | None, Query(max_length=20, description="ISO 639-1 languages (default: the user's).")] = None,
    goal: Annotated[list[str] | None, Query(max_length=50, description="Goal topic ids to work towards.")] = None,
    fresh: Annotated[bool, Query(description="Planned from every event of the user. By default a path planned from "
                                             "a few fewer events may be served (X-Path-Cache: stale, without the "
                                             "items consumed since) while the current one is planned.")] = False,
    services: Services = Depends(get_services),
    served: Served = Depends(get_served),
) -> PathResponse:
    max_behind = 0 if fresh or services.refresher is None else services.config.path_max_stale_events
    # a cached path is a store read: answered at once, never queued behind other users' plans
    req, found = await anyio.to_thread.run_sync(_lookup_path, services, served, user_id, bundles, size, lang, goal,
                                                max_behind, limiter=services.lookup_limiter)
    if found is not None:
        headers = {"X-Path-Cache": found.level}
        if found.level == "stale":
            headers["X-Path-Events-Behind"] = str(req.n_events - found.entry.n_events)
            services.refresher.submit(req.key)
        services.metrics.path_reads.labels(found.level).inc()
        return Response(content=found.body, media_type="application/json", headers=headers)
    # planning is CPU-bound: plans take turns (ApiConfig.plan_concurrency), waiting on the event loop
    result = await anyio.to_thread.run_sync(plan_path, services, served, req, limiter=services.plan_limiter)
    services.metrics.path_reads.labels(result.level).inc()
    headers = {"X-Path-Cache": result.level}
    if result.level != "miss":  # planned by another request while this one waited for its turn
        return Response(content=result.body, media_type="application/json", headers=headers)
    # planned now: the store write happens after the response, outside this request's planning turn
    return Response(content=result.body, media_type="application/json", headers=headers,
                    background=BackgroundTask(services.paths.share, result.key, result.entry))


def _lookup_path(services: Services, served: Served, user_id: str, bundles: int, size: int,
                 lang: list[str] | None, goal: list[str] | None, max_behind: int) -> tuple[PathRequest, PathResult | None]:
    req = path_request(services, user_id, bundles, size, lang, goal)
    return req, cached_path(services, served, req, max_behind=max_behind)
