"""The FastAPI application: ``create_app(settings) -> FastAPI``.

Routes: ``/v1/*`` (API key in ``X-API-Key``) -- events, items, folders, users' mastery and
learning paths; ``/healthz``, ``/readyz``, ``/metrics`` (open, for probes and scrapers);
``/openapi.json`` and ``/docs``. Services (store, champion, planner) are built in the lifespan,
so importing this module has no side effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from kt.api.errors import install_error_handlers
from kt.api.metrics import ApiMetrics
from kt.api.middleware import BodySizeLimit, MetricsMiddleware
from kt.api.refresh import PathRefresher
from kt.api.routers import catalog, events, health, users
from kt.api.security import require_api_key
from kt.api.services import ApiConfig, build_services
from kt.config import Settings

API_VERSION = "v1"
log = logging.getLogger("kt.api")


def create_app(settings: Settings | None = None, config: ApiConfig | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    config = config or ApiConfig()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services = app.state.services = build_services(settings, config, metrics)
        services.refresher = PathRefresher(services)
        refreshing = asyncio.create_task(services.refresher.run(), name="path-refresher")
        refreshing.add_done_callback(_report_refresher_exit)
        # the catalog, graph and model built at startup live as long as the process: keep the
        # collector from re-scanning them (a full collection over them paused every request
        # for ~0.25 s at a million items, and longer as caches filled)
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # let a re-plan in progress finish: its thread uses the store that close() shuts
            services.refresher.stop()
            with contextlib.suppress(Exception):  # already reported by the done callback
                await refreshing
            services.close()
            gc.unfreeze()  # an app closed inside a longer-lived process (tests) can be collected

    app = FastAPI(
        title="ktpath API",
        version="1.0.0",
        summary="Knowledge tracing to learning paths: ingest highlight events, read mastery, get learning paths.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    secured = [Depends(require_api_key)]
    for module in (events, catalog, users):
        app.include_router(module.router, prefix=f"/{API_VERSION}", dependencies=secured)
    app.include_router(health.router)
    # outermost first: metrics see every response, including 413s from the size limit
    app.add_middleware(BodySizeLimit, max_bytes=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _report_refresher_exit(task: asyncio.Task) -> None:
    """Log the path refresher dying: stale paths would be served without ever being re-planned."""
    if not task.cancelled() and task.exception() is not None:
        log.error("the path refresher stopped: stale paths are no longer re-planned", exc_info=task.exception())


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (``kt serve --workers N`` off Linux): settings from KT_* env."""
    return create_app(Settings.from_env())
