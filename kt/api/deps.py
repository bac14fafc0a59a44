"""Dependency injection: routes receive settings, store and the served model from here,
never from module globals, so each app instance (and each test) has its own."""

from __future__ import annotations

from fastapi import HTTPException, Request

from kt.api.model_service import Served
from kt.api.services import Services
from kt.config import Settings
from kt.store import EventStore


def get_services(request: Request) -> Services:
    return request.app.state.services


def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


def get_store(request: Request) -> EventStore:
    return request.app.state.services.store


def get_served(request: Request) -> Served:
    """The champion being served, read once per request (a hot swap never splits a request)."""
    served = request.app.state.services.models.current
    if served is None:
        raise HTTPException(status_code=503, detail="no champion model loaded yet (see /readyz)")
    return served
