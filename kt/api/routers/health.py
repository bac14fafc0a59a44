"""Liveness, readiness and Prometheus metrics (no API key: probes and scrapers call these)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kt.api.deps import get_services
from kt.api.schemas import Health
from kt.api.services import Services

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, response_model_exclude_none=True, summary="Liveness: the process answers.")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz", response_model=Health, summary="Readiness: a champion model is loaded and the store answers.",
    responses={503: {"model": Health, "description": "Not ready (no model yet, or the store is unreachable)."}},
)
def readyz(services: Services = Depends(get_services)) -> Response:
    version = services.models.version
    store_ok = services.store.ping()
    ready = version is not None and store_ok
    detail = {"model_error": services.models.last_error} if services.models.last_error else None
    body = Health(status="ready" if ready else "not ready", model_version=version, store=store_ok, detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
def metrics(services: Services = Depends(get_services)) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
