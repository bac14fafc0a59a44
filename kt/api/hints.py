"""How to start the API and query it: strings for the demo, the README and ``kt serve``."""

from __future__ import annotations

import shlex

from kt.config import Settings


def base_url(host: str = "127.0.0.1", port: int = 8000) -> str:
    return f"http://{host}:{port}"


def docs_url(host: str = "127.0.0.1", port: int = 8000) -> str:
    return f"{base_url(host, port)}/docs"


def serve_hints(
    settings: Settings | None = None, *, user_id: str, host: str = "127.0.0.1", port: int = 8000,
    world_dir: str | None = None, bundles: int = 3, size: int = 5,
) -> dict[str, str]:
    """``{"serve": <kt serve command>, "curl": <curl fetching a learning path with the first API key>,
    "docs": <docs URL>}``."""
    settings = settings or Settings.from_env()
    serve = f"kt serve --host {host} --port {port}"
    if world_dir:
        serve += f" --world {shlex.quote(str(world_dir))}"
    key = settings.api_keys[0] if settings.api_keys else "dev-key"
    url = f"{base_url(host, port)}/v1/users/{user_id}/path?bundles={bundles}&size={size}"
    curl = f"curl -s -H {shlex.quote('X-API-Key: ' + key)} {shlex.quote(url)}"
    return {"serve": serve, "curl": curl, "docs": docs_url(host, port)}
