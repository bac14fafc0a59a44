"""API key, limits and error bodies: 401 without/with a wrong key, 422 with field paths,
500 as {"error": ...} without a traceback."""

from __future__ import annotations

import pytest


def _v1_operations(app) -> list[tuple[str, str]]:
    ops = []
    for path, item in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            for method in item:
                ops.append((method.upper(), path.replace("{user_id}", "someone")))
    return ops


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}])
def test_every_v1_route_needs_a_valid_key(client, headers):
    ops = _v1_operations(client.app)
    assert len(ops) >= 7
    for method, path in ops:
        r = client.request(method, path, headers=headers | ({} if headers else {"X-API-Key": ""}), json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert "API key" in r.json()["error"]


def test_probes_are_open_and_ready(client):
    anon = {"X-API-Key": ""}
    assert client.get("/healthz", headers=anon).json() == {"status": "ok"}
    ready = client.get("/readyz", headers=anon)
    assert ready.status_code == 200 and ready.json()["model_version"] >= 1 and ready.json()["store"] is True
    client.get("/v1/users/nobody/mastery")
    text = client.get("/metrics", headers=anon).text
    assert 'ktpath_http_requests_total{method="GET",route="/v1/users/{user_id}/mastery",status="404"}' in text
    assert "ktpath_http_request_duration_seconds_bucket" in text and "ktpath_ingest_events_total" in text
    assert "ktpath_model_version" in text
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert client.get("/docs").status_code == 200


def test_validation_errors_name_the_field(client):
    r = client.get("/v1/users/u00000/path", params={"bundles": 0})
    assert r.status_code == 422
    assert ["query", "bundles"] in [e["loc"] for e in r.json()["details"]]
    r = client.post("/v1/events", json={"events": "nope"})
    assert r.status_code == 422 and ["body", "events"] in [e["loc"] for e in r.json()["details"]]
    r = client.post("/v1/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()


def test_internal_errors_hide_the_traceback(client, monkeypatch, caplog):
    def boom(*_a, **_k):
        raise RuntimeError("secret internals at /srv/app.py line 42")

    monkeypatch.setattr(client.app.state.services.store, "existing_ids", boom)
    r = client.post("/v1/events", json={"events": [{"event_id": "x"}]})
    assert r.status_code == 500
    body = r.text
    assert r.json()["error"] == "internal server error" and r.json()["request_id"]
    for leak in ("Traceback", "secret internals", "File \"", "RuntimeError"):
        assert leak not in body
    assert any("secret internals" in str(rec.exc_info) for rec in caplog.records if rec.exc_info)


def test_error_bodies_never_carry_tracebacks(client):
    bodies = [
        client.get("/v1/users/nobody/path"),
        client.get("/v1/users/u00000/path", params={"goal": "no-such-topic"}),
        client.put("/v1/items", json={"items": [{"content_id": "n1"}]}),
        client.put("/v1/items", json={"items": [{"content_id": "n1", "title": "t", "url": "u", "language": "en",
                                                  "topics": ["nope"], "difficulty": 0.5}]}),
        client.post("/v1/folders", json={"folders": [{"folder_id": "f", "user_id": "u", "name": "n", "items": ["zz"]}]}),
        client.post("/v1/events", json={"events": [{"event_id": "a\x00b", "user_id": "u\x00"}]}),
        client.get("/v1/nothing-here"),
    ]
    for r in bodies:
        assert r.status_code in (200, 404, 422), r.text
        assert "Traceback" not in r.text and "File \"" not in r.text
        if r.status_code != 200:
            assert "error" in r.json()
