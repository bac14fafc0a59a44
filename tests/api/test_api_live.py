"""``kt serve`` as a real process: crash safety (SIGKILL mid-ingest) and fuzzing with schemathesis."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pandas as pd
import pytest
from api_helpers import API_KEY

from kt.api.live import LiveServer

pytestmark = pytest.mark.slow


def _batches(items: list[str], users: list[str], n_batches: int, size: int):
    t0 = pd.Timestamp("2026-03-01", tz="UTC")
    k = 0
    for b in range(n_batches):
        batch = []
        for _ in range(size):
            batch.append({"event_id": f"crash-{k}", "user_id": users[k % len(users)], "content_id": items[k % len(items)],
                          "timestamp": (t0 + pd.Timedelta(seconds=k)).isoformat(), "read_fraction": 0.9 if k % 3 else 0.1,
                          "dwell_seconds": 100.0, "n_highlights": 1, "quiz_correct": None})
            k += 1
        yield b, batch


def test_acknowledged_events_survive_sigkill(live_db, tmp_path):
    from kt.store import EventStore

    home, db_url = live_db
    store = EventStore(db_url)
    items = store.read_table("items")["content_id"].tolist()
    users = store.read_table("users")["user_id"].tolist()[:3]
    store.close()
    acked: list[str] = []
    started = threading.Event()
    server = LiveServer(home, db_url, API_KEY, tmp_path / "serve.log").start()
    try:
        def send() -> None:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=30) as http:
                for b, batch in _batches(items, users, 10_000, 25):
                    try:
                        r = http.post("/v1/events", json={"events": batch})
                    except httpx.HTTPError:
                        return  # the server died mid-request: this batch was never acknowledged
                    assert r.status_code == 200, r.text
                    assert r.json()["accepted"] + r.json()["duplicates"] == len(batch)
                    acked.extend(e["event_id"] for e in batch)
                    if b == 5:
                        started.set()

        sender = threading.Thread(target=send)
        sender.start()
        assert started.wait(120)
        server.kill()
        sender.join(60)
    finally:
        server.stop()
    assert len(acked) >= 150
    store = EventStore(db_url)
    assert store.existing_ids("events", acked) == set(acked)
    store.close()

    server = LiveServer(home, db_url, API_KEY, tmp_path / "serve2.log").start()
    try:
        with httpx.Client(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60) as http:
            store = EventStore(db_url)
            for u in users:
                m = http.get(f"/v1/users/{u}/mastery").json()
                assert m["n_events"] == store.user_interaction_count(u)
                assert sum(t["n_obs"] for t in m["topics"]) == m["n_events"]
            store.close()
    finally:
        server.stop()


def test_schemathesis_finds_no_server_errors(live_db, tmp_path):
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists() and shutil.which("schemathesis") is None:
        pytest.skip("schemathesis not installed")
    home, db_url = live_db
    server = LiveServer(home, db_url, API_KEY, tmp_path / "serve.log").start()
    try:
        cmd = [str(exe if exe.exists() else shutil.which("schemathesis")), "run", f"{server.url}/openapi.json",
               "-H", f"X-API-Key: {API_KEY}", "--checks", "not_a_server_error", "--max-examples", "30",
               "--phases", "examples,fuzzing", "--seed", "0", "--workers", "1", "--request-timeout", "30",
               "--no-color"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
