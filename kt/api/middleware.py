"""Pure ASGI middleware: request body size limit and per-route metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so the request body is streamed through unchanged and
a streamed (chunked) body is cut off as soon as it passes the limit.
"""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kt.api.metrics import ApiMetrics


async def _send_json(send: Send, status: int, body: dict) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Reject request bodies larger than ``max_bytes`` with 413 (declared or streamed size)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"error": f"request body larger than {self.max_bytes} bytes"}
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"error": "invalid Content-Length header"})
                    return
                if declared > self.max_bytes:
                    await _send_json(send, 413, too_large)
                    return
        seen = 0
        started = exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # the app caught the cut-off itself (FastAPI's body parser answers 400 "error parsing
                # the body"): answer what happened instead, and drop the app's response
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_json(send, 413, too_large)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, too_large)


def route_template(scope: Scope) -> str:
    """The matched route's full path template, e.g. ``/v1/users/{user_id}/path``.

    The router stores the innermost route in the scope; its path lacks the prefix of an
    included router, which is recovered as what precedes the rendered route path."""
    route = scope.get("route")
    # path_format drops convertors: {user_id:path} is labelled {user_id}, as OpenAPI shows it
    tmpl = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not tmpl:
        return "unmatched"
    rendered = tmpl
    for name, value in (scope.get("path_params") or {}).items():
        rendered = rendered.replace("{" + name + "}", str(value))
    path = scope.get("path", "")
    return path[: len(path) - len(rendered)] + tmpl if path.endswith(rendered) else tmpl


class MetricsMiddleware:
    """Count requests and time them by route *template* (``/v1/users/{user_id}/path``), so
    user ids never become label values."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            template = route_template(scope)
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)
