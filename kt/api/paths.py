"""Learning-path bodies for the API: computed by the planner, cached, shared, and precomputed.

:func:`learning_path` is what ``GET /v1/users/{id}/path`` does, without the HTTP: it returns
the encoded body from the path cache when its stamps still hold, else plans it. The route runs
its two halves apart (:func:`cached_path` at once, :func:`plan_path` in a planning turn), so a
cached read never queues behind other users' plans; a path a few events behind may be served
stale while :mod:`kt.api.refresh` re-plans it. The warm-up job (:mod:`kt.api.warm`) runs the
same function ahead of the users' requests.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import NoReturn

import pandas as pd
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from kt.api.model_service import Served
from kt.api.path_cache import PathEntry, PathKey
from kt.api.schemas import PathBundle, PathItem, PathResponse
from kt.api.services import Services

LANGUAGE = re.compile(r"[a-z]{2}")


@dataclass(frozen=True)
class PathResult:
    """An encoded path (``entry.body``) and its cache key; ``level`` is "hit" (this process),
    "shared" (the store) or "miss" (planned now: the caller should share ``entry``)."""

    entry: PathEntry
    level: str
    key: PathKey

    @property
    def body(self) -> bytes:
        return self.entry.body


def require_known(services: Services, user_id: str, n_events: int) -> None:
    """404 for a user with no events who is not in the users table either."""
    if n_events == 0 and not services.store.existing_ids("users", [user_id]) and not services.store.user_event_count(user_id):
        raise HTTPException(status_code=404, detail=f"unknown user {user_id!r} (no events, not in the users table)")


@dataclass(frozen=True)
class PathRequest:
    """A validated path request with its cache key and the stamps read for it."""

    user_id: str
    bundles: int
    size: int
    languages: tuple[str, ...] | None  # the request's, else the user's; None: the planner infers them
    goal: tuple[str, ...]
    key: PathKey
    n_events: int  # every event of the user (all of them seed the walk and mark items consumed)
    n_interactions: int  # those with an outcome: what the KT model has seen
    catalog_version: int


def _invalid_query(name: str, msg: str) -> NoReturn:
    """A 422 in the shape of every request validation error: ``{"error": "invalid request", "details":
    [{"loc": ["query", name], "msg": ...}]}``."""
    raise RequestValidationError([{"loc": ("query", name), "msg": msg, "type": "value_error"}])


def path_request(services: Services, user_id: str, bundles: int = 3, size: int = 5, lang: list[str] | None = None,
                 goal: list[str] | None = None) -> PathRequest:
    """Validate (404 unknown user, 422 bad language or goal) and read the stamps: store reads only."""
    services.sync_catalog()  # catalog changes made through other worker processes
    n_all, n_inter = services.store.user_event_counts(user_id)
    require_known(services, user_id, n_all)
    planner_config = services.world.planner.config
    if not planner_config.min_bundle <= size <= planner_config.max_bundle:
        _invalid_query("size", f"items per bundle must be {planner_config.min_bundle}..{planner_config.max_bundle} "
                               f"(the planner's bundle limits), got {size}")
    bad = [x for x in (lang or []) if not LANGUAGE.fullmatch(x)]
    if bad:
        _invalid_query("lang", f"not ISO 639-1 code(s): {', '.join(map(repr, bad))}")
    if lang:  # asked for: a language without items would plan an empty path without saying why (as kt recommend)
        absent, known = services.world.planner.catalog.languages_without_items(lang)
        if absent:
            _invalid_query("lang", f"no items in {', '.join(absent)}; the catalog has {', '.join(known)}")
    if goal:
        unknown = sorted(set(goal) - services.world.known_topics())
        if unknown:
            _invalid_query("goal", f"unknown topic id(s): {', '.join(map(repr, unknown))}")
    # the languages planned with are in the key, also when they come from the users table
    languages = lang or services.user_languages(user_id)
    key: PathKey = (user_id, bundles, size, tuple(languages or ()), tuple(goal or ()))
    # read before planning: an update landing mid-plan leaves an entry stamped with the old
    # change number, which the next read recomputes
    catalog_version = services.world.seq  # the store's change number: the same in every caught-up process
    return PathRequest(user_id, bundles, size, None if languages is None else tuple(languages), tuple(goal or ()), key,
                       n_all, n_inter, catalog_version)


def cached_path(services: Services, served: Served, req: PathRequest, local_only: bool = False,
                max_behind: int = 0) -> PathResult | None:
    """The path from this process's LRU or the store's shared table (``local_only``: the LRU
    alone), if its stamps still hold; else, with ``max_behind`` > 0, one planned from at most that
    many fewer of the user's events (level "stale"), without the items the user has consumed
    since."""
    found = services.paths.get(req.key, req.n_events, req.catalog_version, served.version, local_only=local_only,
                               max_behind=max_behind)
    if found is None:
        return None
    entry, level = found
    if level == "stale":
        entry = PathEntry(entry.n_events, entry.catalog_version, entry.model_version,
                          without_consumed(services, req.user_id, entry.body))
    return PathResult(entry, level, req.key)


def without_consumed(services: Services, user_id: str, body: bytes) -> bytes:
    """``body`` (an encoded path) without the items the user has an event on, and without
    bundles left empty; the same bytes when there are none. Stricter than the planner, which
    leaves out the items of the user's last ``history_limit`` events: a stale path never lists
    an item the user has read, however long ago."""
    path = json.loads(body)
    listed = [item["content_id"] for bundle in path["bundles"] for item in bundle["items"]]
    consumed = services.store.consumed_among(user_id, listed)
    if not consumed:
        return body
    for bundle in path["bundles"]:
        bundle["items"] = [item for item in bundle["items"] if item["content_id"] not in consumed]
    path["bundles"] = [bundle for bundle in path["bundles"] if bundle["items"]]
    return PathResponse.model_validate(path).model_dump_json().encode()


def plan_path(services: Services, served: Served, req: PathRequest) -> PathResult:
    """Plan the path (the mastery state caught up with the log first) and keep it in this
    process; the caller shares it. A request that waited for its planning turn finds a path
    another request of this process planned meanwhile in the LRU instead (the store was read
    just before)."""
    found = cached_path(services, served, req, local_only=True)
    if found is not None:
        return found
    learner, _ = served.extras["learner"].pinned(req.user_id, req.n_interactions)
    history = pd.DataFrame(services.store.user_events(req.user_id, limit=services.config.history_limit))
    if len(history):
        history = history[["content_id", "timestamp"]]
    world = services.world
    with world.lock.read():
        path = world.planner.plan(req.user_id, learner, history if len(history) else None, n_bundles=req.bundles,
                                  bundle_size=req.size, languages=req.languages, goal_topics=req.goal or None)
    body = path_response(path, served.version).model_dump_json().encode()
    entry = PathEntry(req.n_events, req.catalog_version, served.version, body)
    services.paths.put(req.key, entry, share=False)
    return PathResult(entry, "miss", req.key)


def learning_path(services: Services, served: Served, user_id: str, bundles: int = 3, size: int = 5,
                  lang: list[str] | None = None, goal: list[str] | None = None) -> PathResult:
    """The user's learning path as the API encodes it, from the cache when still valid."""
    req = path_request(services, user_id, bundles, size, lang, goal)
    return cached_path(services, served, req) or plan_path(services, served, req)


def path_response(path, version: int) -> PathResponse:
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


def _num(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None
