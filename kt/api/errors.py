"""Error responses: always ``{"error": ...}`` JSON, never a stack trace.

* HTTPException -> its status with ``{"error": detail}``;
* request validation -> 422 with ``{"error": "invalid request", "details": [{"loc", "msg"}]}``
  where ``loc`` is the field path (e.g. ``["body", "events"]``);
* anything else -> 500 ``{"error": "internal server error", "request_id": ...}``; the traceback
  goes to the server log under the same request id.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("kt.api")


def _validation_details(exc: RequestValidationError) -> list[dict]:
    out = []
    for err in exc.errors():
        # ``input`` and ``ctx`` may echo large or odd payloads; the path and message suffice
        out.append({"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "invalid value"))})
    return out


async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, (str, dict, list)) else str(exc.detail)
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": "invalid request", "details": _validation_details(exc)}, status_code=422)


async def unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = uuid.uuid4().hex[:12]
    log.error("unhandled error on %s %s [request_id=%s]", request.method, request.url.path, request_id, exc_info=exc)
    return JSONResponse({"error": "internal server error", "request_id": request_id}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unhandled_error)
