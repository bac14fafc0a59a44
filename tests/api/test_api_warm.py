"""Precomputed learning paths (``kt warm-paths``): every user's default path lands in the shared
cache, byte for byte what a request would plan, and stays subject to the same stamps."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api_helpers import API_KEY, make_settings, spawned_children

from kt.api.warm import warm_paths, warm_store
from kt.cli import main


def _read(client, user, **params):
    r = client.get(f"/v1/users/{user}/path", params=params)
    assert r.status_code == 200, r.text
    return r.headers["X-Path-Cache"], r.content


def test_warmed_paths_are_what_a_request_plans_and_expire_on_events(client):
    services = client.app.state.services
    users = services.store.user_ids()
    events = services.store.events_frame()
    assert set(events["user_id"]) <= set(users) and len(users) >= 3
    services.paths.clear()
    assert all(services.user_languages(u) for u in users[:3])  # the key's languages come from the users table
    stats = warm_paths(services, users[:3] + ["nobody"])
    assert (stats.users, stats.planned, stats.fresh, stats.skipped, stats.failed) == (4, 3, 0, 1, 0)  # "nobody": 404
    services.paths.clear(shared=False)
    assert warm_paths(services, users[:3]).fresh == 3  # a second run finds them current in the store

    services.paths.clear(shared=False)  # as a worker that did not warm them
    warmed = [_read(client, u) for u in users[:3]]
    assert [level for level, _ in warmed] == ["shared"] * 3
    services.paths.clear()
    assert [_read(client, u) for u in users[:3]] == [("miss", body) for _, body in warmed]  # the same bytes
    assert _read(client, users[3])[0] == "miss"  # not warmed

    user = users[0]
    warm_paths(services, [user])
    services.paths.clear(shared=False)
    consumed = set(services.store.events_frame(user_ids=[user])["content_id"])
    item = next(c for c in services.store.read_table("items")["content_id"] if c not in consumed)
    ev = {"event_id": "warm-ev-1", "user_id": user, "content_id": item, "timestamp": "2026-11-01T00:00:00Z",
          "read_fraction": 1.0, "dwell_seconds": 300.0, "n_highlights": 3, "quiz_correct": None}
    assert client.post("/v1/events", json={"events": [ev]}).json()["accepted"] == 1
    assert _read(client, user, fresh="true")[0] == "miss"  # the warmed path was planned before this event


def test_a_path_kept_over_by_a_newer_one_counts_as_superseded(client):
    from kt.api.path_cache import PathEntry
    from kt.api.paths import path_request

    services = client.app.state.services
    user = services.store.user_ids()[0]
    services.paths.clear()
    assert warm_paths(services, [user]).planned == 1
    req = path_request(services, user)
    # as if a worker had meanwhile planned from events this run has not seen
    newer = PathEntry(req.n_events + 1, req.catalog_version, services.models.current.version, b"{}")
    assert services.paths.write_shared(req.key, newer)
    stats = warm_paths(services, [user])
    assert (stats.planned, stats.fresh, stats.superseded) == (0, 0, 1)
    assert services.store.cached_path(services.paths._digest(req.key))[0] == req.n_events + 1  # the newer row stays


def test_failed_writes_count_as_failures_and_a_run_of_them_stops_the_job(client, monkeypatch):
    services = client.app.state.services
    users = services.store.user_ids()[:3]
    services.paths.clear()

    def down(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(services.store, "put_cached_path", down)
    stats = warm_paths(services, users)
    assert (stats.planned, stats.failed) == (0, 3)  # planned but not stored: not counted as warmed
    with pytest.raises(RuntimeError, match="2 users in a row failed"):
        warm_paths(services, users, max_failures_in_a_row=2)


def test_warm_store_without_a_champion_fails_in_one_line(loaded_db, tmp_path, monkeypatch, capsys):
    with pytest.raises(RuntimeError, match="no champion"):  # checked before any process starts
        warm_store(make_settings(tmp_path, loaded_db), processes=2, limit=2, log=lambda _: None)
    monkeypatch.setenv("KT_HOME", str(tmp_path))  # an empty registry
    monkeypatch.setenv("KT_DB_URL", loaded_db)
    assert main(["warm-paths", "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert "no champion" in err and "Traceback" not in err


def test_warm_store_over_two_processes_fills_the_shared_cache(client, served_home, loaded_db):
    services = client.app.state.services
    services.paths.clear()
    stats = warm_store(make_settings(served_home[0], loaded_db), processes=2, limit=4, log=lambda _: None)
    assert (stats.users, stats.planned, stats.skipped) == (4, 4, 0)
    services.paths.clear(shared=False)
    assert [_read(client, u)[0] for u in services.store.user_ids()[:4]] == ["shared"] * 4


def test_warm_paths_cli_warms_the_configured_store(client, served_home, loaded_db, monkeypatch, capsys):
    services = client.app.state.services
    services.paths.clear()
    monkeypatch.setenv("KT_HOME", str(served_home[0]))
    monkeypatch.setenv("KT_DB_URL", loaded_db)
    assert main(["warm-paths", "--limit", "3"]) == 0
    assert "3 users: 3 planned, 0 already fresh, 0 superseded by newer paths, 0 skipped" in capsys.readouterr().out
    services.paths.clear(shared=False)
    assert [_read(client, u)[0] for u in services.store.user_ids()[:3]] == ["shared"] * 3


def test_warm_paths_cli_rejects_bad_arguments(capsys):
    assert main(["warm-paths", "--processes", "0"]) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err
    for size in ("50", "2"):  # the planner's bundle limits, as the API's
        assert main(["warm-paths", "--size", size]) == 2
        assert "--size in 3..10" in capsys.readouterr().err
    assert main(["warm-paths", "--limit", "-1"]) == 2
    assert "--limit must be >= 0" in capsys.readouterr().err


def test_a_killed_warm_process_fails_the_run_in_one_line(served_home, loaded_db, tmp_path):
    """SIGKILL one of the processes (as the OOM killer would): the parent stops the other and
    exits 2 with one line naming it, and no process is left behind."""
    env = {**os.environ, "KT_HOME": str(served_home[0]), "KT_DB_URL": loaded_db, "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "kt.cli", "warm-paths", "--processes", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)

    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(children) < 2 and proc.poll() is None and time.monotonic() < deadline:
            children = spawned_children(proc.pid)
            time.sleep(0.05)
        assert len(children) == 2, f"warm-up processes seen: {children}"
        os.kill(children[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        for pid in [proc.pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 2, (out, err)
    last = err.strip().splitlines()[-1]
    assert last.startswith("kt warm-paths: error: warm-up process") and "exited with status -9 before finishing" in last, err
    assert "Traceback" not in err
    assert not any(Path(f"/proc/{p}").exists() for p in children)  # the other one was stopped too


def test_a_champion_trained_with_another_outcome_rule_is_not_served(served_home, loaded_db, tmp_path):
    from fastapi.testclient import TestClient

    from kt.api import create_app

    (tmp_path / "rule.yaml").write_text("highlights_understood: 4\n")
    settings = make_settings(served_home[0], loaded_db).with_overrides(outcome_rule_file=tmp_path / "rule.yaml")
    with pytest.raises(RuntimeError, match="highlights_understood 2 in training, 4 now"):
        warm_store(settings, processes=1, limit=1, log=lambda _: None)
    with TestClient(create_app(settings), raise_server_exceptions=False, headers={"X-API-Key": API_KEY}) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "another outcome rule" in ready.json()["detail"]["model_error"]
