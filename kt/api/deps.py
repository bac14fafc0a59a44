"""Dependency injection: routes receive settings, store and the served model from here,
never from module globals, so each app instance (and each test) has its own.

The dependencies are ``async def``: they only read attributes, and FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop (and a turn at the GIL) per dependency per request."""

from __future__ import annotations

from fastapi import HTTPException, Request

from kt.api.model_service import Served
from kt.api.services import Services
from kt.config import Settings
from kt.store import EventStore


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


async def get_store(request: Request) -> EventStore:
    return request.app.state.services.store


async def get_served(request: Request) -> Served:
    """The champion being served, read once per request (a hot swap never splits a request)."""
    served = request.app.state.services.models.current
    if served is None:
        raise HTTPException(status_code=503, detail="no champion model loaded yet (see /readyz)")
    return served
