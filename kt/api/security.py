"""API-key authentication for /v1 routes: the ``X-API-Key`` header must be one of
``Settings.api_keys`` (compared in constant time)."""

from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"

api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="One of Settings.api_keys.")


async def require_api_key(request: Request, key: str | None = Depends(api_key_header)) -> str:
    accepted = request.app.state.services.settings.api_keys
    if key and any(hmac.compare_digest(key.encode(), k.encode()) for k in accepted):
        return key
    raise HTTPException(status_code=401, detail=f"missing or invalid API key (send it in the {API_KEY_HEADER} header)",
                        headers={"WWW-Authenticate": "ApiKey"})
