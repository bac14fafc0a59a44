"""Everything one API process holds: settings, store, metrics, the planner world and the
served champion with its tracker.

Built once at startup by :func:`build_services` (the app's lifespan) and reached by routes
through :mod:`kt.api.deps`. Nothing here is a module global.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pandas as pd

from kt.api.learner import ServedLearner
from kt.api.metrics import ApiMetrics
from kt.api.model_service import ModelService, Served
from kt.api.path_cache import PathCache
from kt.api.world import TRACKED_ITEM_COLUMNS, ServingWorld
from kt.config import Settings
from kt.data.outcome import OutcomeRule
from kt.mastery.store import MasteryStateStore
from kt.planner import PlannerConfig
from kt.store import EventStore

if TYPE_CHECKING:
    from kt.api.refresh import PathRefresher

log = logging.getLogger("kt.api")
_MISSING = object()


@dataclass(frozen=True)
class ApiConfig:
    """Service limits and timings.

    max_body_bytes: larger request bodies get 413. max_batch_events: longer ingest batches get
    422. max_catalog_batch: the same for items/folders. champion_poll_seconds: how often the
    registry alias is checked. history_limit: recent events per user handed to the planner.
    require_model: refuse to start without a champion (default: start, report not ready, poll).

    mastery_cache_size: per-user topic mastery tables kept in memory until the user's next
    interaction. Each is a small DataFrame of some fifty objects the garbage collector scans, so
    a large cache makes full collections pause every request (measured ~0.1 s at 5 000 tables).
    path_cache_size: learning paths kept (encoded, a few kB each) until the user's events, the
    catalog or the champion change; 0 turns the cache off (:mod:`kt.api.path_cache`).
    shared_path_cache: also keep every computed path in the store, so every worker process
    (and a restarted one) serves it; a local miss then costs one indexed read.
    plan_concurrency: paths and mastery tables computed at once per process; the rest wait
    their turn. Planning is CPU-bound Python and numpy under the GIL, so extra threads add no
    throughput, and many of them hand the GIL back and forth on every numpy call: measured on
    2 cores, 8 concurrent plans took 5x longer each than plans in turn. Waiting requests wait on
    the event loop, not in pool threads, so probes, ingest and catalog writes are not held up
    behind them. Scale with worker processes instead.
    lookup_concurrency: path lookups (validation and cache reads, store queries) run at once
    per process, in their own pool of turns: they need no planning turn, and lookups stalled on
    a slow store cannot take the threads that probes and ingest run in.
    path_max_stale_events: a path read whose cached path was planned from at most this many
    fewer of the user's events (same catalog and champion) is answered with it, minus the items
    consumed since, and re-planned in the background (:mod:`kt.api.refresh`); 0 plans every such
    read while the client waits. ``fresh=true`` on a request asks for the current path.
    catalog_log_retention_s: catalog change-log entries (and shared learning paths) older than
    this are pruned, at most every catalog_prune_every_s per process, on a catalog write. A
    worker that has not applied a pruned entry (idle for longer than the retention) reloads the
    whole catalog instead.
    """

    max_body_bytes: int = 1 << 20
    max_batch_events: int = 1000
    max_catalog_batch: int = 10_000
    champion_poll_seconds: float = 5.0
    history_limit: int = 200
    mastery_cache_size: int = 1_000
    path_cache_size: int = 20_000
    shared_path_cache: bool = True
    plan_concurrency: int = 1
    lookup_concurrency: int = 8
    path_max_stale_events: int = 3
    catalog_log_retention_s: float = 7 * 86_400.0
    catalog_prune_every_s: float = 3_600.0
    require_model: bool = False


@dataclass
class Services:
    settings: Settings
    config: ApiConfig
    store: EventStore
    metrics: ApiMetrics
    rule: OutcomeRule
    world: ServingWorld
    models: ModelService
    paths: PathCache = field(default_factory=PathCache)
    plan_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(1))
    lookup_limiter: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(8))
    # every champion's tracker writes through this one connection pool (its rows carry the
    # model version): a hot swap opens no new pool and leaves none behind
    mastery_states: MasteryStateStore | None = None
    # re-plans paths served stale; started with the app (None: stale paths are never served)
    refresher: PathRefresher | None = None
    _languages: dict = field(default_factory=dict)
    _pruned_at: float = float("-inf")

    def user_languages(self, user_id: str) -> tuple[str, ...] | None:
        """The user's languages from the users table (cached; users are not edited over the API)."""
        cached = self._languages.get(user_id, _MISSING)
        if cached is _MISSING:
            rows = self.store.get_rows("users", [user_id])
            value = rows[0].get("languages") if rows else None
            # a tuple of str: the collector stops tracking it, and there may be 100k of them
            cached = tuple(x for x in str(value).split("|") if x) if value else None
            if rows:  # unknown users may appear later: do not cache their absence
                if len(self._languages) >= 200_000:
                    self._languages.clear()
                self._languages[user_id] = cached
        return cached

    def sync_catalog(self) -> None:
        """Bring this process's planner world and served tracker up to the store's catalog
        change log (writes by this or any other worker process). One indexed query when
        nothing changed."""
        latest = self.store.catalog_seq()
        if latest <= self.world.seq:
            return

        def to_tracker(rows: pd.DataFrame) -> None:
            served = self.models.current
            if served is not None:
                served.extras["tracker"].catalog.add_items(rows[TRACKED_ITEM_COLUMNS])

        with self.models.swap_lock:  # a champion swap cannot slip between world and tracker
            self.world.catch_up(self.store, latest, on_items=to_tracker)

    def prune_catalog_log(self) -> int:
        """Drop change-log entries, and shared learning paths, older than the retention (at most
        every ``catalog_prune_every_s`` in this process); returns how many log entries went."""
        now = time.time()
        if now - self._pruned_at < self.config.catalog_prune_every_s:
            return 0
        self._pruned_at = now
        try:
            # shared learning paths not rewritten for as long go too: clients may ask for many
            # parameter sets, and an entry that old is almost never valid any more
            self.store.prune_cached_paths(now - self.config.catalog_log_retention_s)
            return self.store.prune_catalog_changes(now - self.config.catalog_log_retention_s)
        except Exception:  # housekeeping after a committed write: never fail that write's response
            log.exception("pruning the catalog change log failed; retrying after catalog_prune_every_s")
            return 0

    def learner(self) -> ServedLearner | None:
        served = self.models.current
        return served.extras["learner"] if served is not None else None

    def close(self) -> None:
        self.models.stop()
        if self.mastery_states is not None:
            self.mastery_states.close()
        self.store.close()


def _plan_namespace(settings: Settings, config: ApiConfig, planner: PlannerConfig) -> str:
    """What a learning path depends on besides its stamps: code version, planner settings, the
    history length planned from, the registered model's name."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        code = version("ktpath")
    except PackageNotFoundError:
        code = "dev"
    return repr((code, sorted(planner.to_dict().items()), config.history_limit, settings.registered_model))


def build_tracker_extras(store: EventStore, states: MasteryStateStore, world: ServingWorld, version: int, loaded,
                         cache_size: int, rule: OutcomeRule) -> dict:
    """The mastery tracker (and its log-coherent learner) for one champion version."""
    from kt.mastery.tracker import MasteryTracker
    from kt.models.checkpoint import check_outcome_rule

    check_outcome_rule(loaded, rule)  # a mismatching champion is not swapped in (reported on /readyz)
    generation = world.generation  # first: items arriving while this builds are caught up at the swap
    items = world.items
    added = world.items_since(0)
    if added is not None:
        items = pd.concat([items, added], ignore_index=True)
    tracker = MasteryTracker.from_loaded(
        loaded, items, model_version=str(version), state_store=states,
        topics=list(world.planner.catalog.topics.tokens),
    )
    learner = ServedLearner(tracker, store, version, cache_size=cache_size)
    return {"tracker": tracker, "learner": learner, "generation": generation}


def build_services(settings: Settings, config: ApiConfig, metrics: ApiMetrics,
                   planner_config: PlannerConfig | None = None) -> Services:
    store = EventStore(settings.db_url)
    world = ServingWorld.from_store(store, planner_config)
    states = MasteryStateStore(store.url)
    rule = settings.outcome_rule()

    def catch_up_items(served: Served) -> None:
        # items added while this tracker was being built (runs under swap_lock)
        late = world.items_since(served.extras["generation"])
        if late is not None:
            served.extras["tracker"].catalog.add_items(late)

    models = ModelService(
        settings,
        build=lambda version, loaded: build_tracker_extras(store, states, world, version, loaded,
                                                           config.mastery_cache_size, rule),
        poll_seconds=config.champion_poll_seconds,
        before_swap=catch_up_items,
        on_swap=lambda served: (metrics.model_version.set(served.version), metrics.model_swaps.inc()),
    )
    paths = PathCache(config.path_cache_size, store if config.shared_path_cache else None,
                      namespace=_plan_namespace(settings, config, world.planner.config))
    services = Services(settings=settings, config=config, store=store, metrics=metrics, rule=rule,
                        world=world, models=models, paths=paths, mastery_states=states,
                        plan_limiter=anyio.CapacityLimiter(max(1, config.plan_concurrency)),
                        lookup_limiter=anyio.CapacityLimiter(max(1, config.lookup_concurrency)))
    if not models.refresh() and models.current is None:
        msg = models.last_error or f"no champion for {settings.registered_model!r} in {settings.mlflow_tracking_uri}"
        if config.require_model:
            services.close()
            raise RuntimeError(msg)
        log.warning("starting without a model: %s (polling the registry)", msg)
    models.start()
    return services
