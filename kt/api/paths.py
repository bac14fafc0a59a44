"""Learning-path bodies for the API: computed by the planner, cached, shared, and precomputed.

:func:`learning_path` is what ``GET /v1/users/{id}/path`` does, without the HTTP: it returns
the encoded body from the path cache when its stamps still hold, else plans it. The warm-up
job (:mod:`kt.api.warm`) runs the same function ahead of the users' requests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd
from fastapi import HTTPException

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


def learning_path(services: Services, served: Served, user_id: str, bundles: int = 3, size: int = 5,
                  lang: list[str] | None = None, goal: list[str] | None = None) -> PathResult:
    """The user's learning path as the API encodes it, from the cache when still valid."""
    services.sync_catalog()  # catalog changes made through other worker processes
    n_all, n_inter = services.store.user_event_counts(user_id)
    learner, _ = served.extras["learner"].pinned(user_id, n_inter)
    require_known(services, user_id, n_all)
    bad = [x for x in (lang or []) if not LANGUAGE.fullmatch(x)]
    if bad:
        raise HTTPException(status_code=422, detail=f"lang: not ISO 639-1 code(s): {', '.join(map(repr, bad))}")
    world = services.world
    if goal:
        unknown = sorted(set(goal) - world.known_topics())
        if unknown:
            raise HTTPException(status_code=422, detail=f"goal: unknown topic id(s): {', '.join(map(repr, unknown))}")
    # the languages planned with are in the key, also when they come from the users table
    languages = lang or services.user_languages(user_id)
    key: PathKey = (user_id, bundles, size, tuple(languages or ()), tuple(goal or ()))
    # read before planning: an update landing mid-plan leaves an entry stamped with the old
    # change number, which the next read recomputes
    catalog_version = world.seq  # the store's change number: the same in every caught-up process
    # every event counts (n_all), not only those with an outcome: all of them seed the walk
    # and mark items as consumed
    cached = services.paths.get(key, n_all, catalog_version, served.version)
    if cached is not None:
        return PathResult(PathEntry(n_all, catalog_version, served.version, cached[0]), cached[1], key)
    history = pd.DataFrame(services.store.user_events(user_id, limit=services.config.history_limit))
    if len(history):
        history = history[["content_id", "timestamp"]]
    with world.lock.read():
        path = world.planner.plan(user_id, learner, history if len(history) else None, n_bundles=bundles,
                                  bundle_size=size, languages=languages, goal_topics=goal)
    body = path_response(path, served.version).model_dump_json().encode()
    entry = PathEntry(n_all, catalog_version, served.version, body)
    services.paths.put(key, entry, share=False)
    return PathResult(entry, "miss", key)


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
