"""A newly promoted champion is served without a restart and without a failed request."""

from __future__ import annotations

from api_helpers import API_KEY, make_settings


def test_promoted_champion_is_picked_up_while_serving(private_home, tmp_path):
    from fastapi.testclient import TestClient

    from kt.api import create_app
    from kt.api.services import ApiConfig
    from kt.store import EventStore
    from kt.store.loader import load_world_into_store
    from kt.train.tracking import MLflowTracker, champion_version, promote

    home, world_dir = private_home
    db_url = f"sqlite:///{tmp_path / 'kt.db'}"
    store = EventStore(db_url)
    load_world_into_store(store, world_dir)
    user = store.events_frame()["user_id"].value_counts().index[0]
    store.close()
    settings = make_settings(home, db_url)
    old = champion_version(settings)
    # a second version, registered but not yet promoted
    ckpt = next((home / "ckpt1").glob("best.pt"))
    tracker = MLflowTracker(settings, run_name="api-test-v2")
    new = tracker.register_checkpoint(ckpt)
    tracker.finish()
    assert new != old

    app = create_app(settings, ApiConfig(champion_poll_seconds=0.1))
    statuses, versions = [], []
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": API_KEY}) as client:
        states = client.app.state.services.mastery_states
        for i in range(400):
            if i == 5:
                promote(settings, version=new)
            r = client.get(f"/v1/users/{user}/path" if i % 2 else f"/v1/users/{user}/mastery")
            statuses.append(r.status_code)
            versions.append(r.json().get("model_version"))
            if versions[-1] == new and i > 10:
                break
        mastery = client.get(f"/v1/users/{user}/mastery").json()
        # the state was rebuilt from the event log for the new version
        learner = client.app.state.services.learner()
        assert learner.tracker.store.load(user).meta.model_version == str(new)
        assert learner.tracker.store is states  # the swap opened no second connection pool
        assert mastery["n_events"] == learner.store.user_interaction_count(user)
    assert set(statuses) == {200}, statuses
    assert versions[0] == old and versions[-1] == new
    # once swapped, never back
    first_new = versions.index(new)
    assert all(v == new for v in versions[first_new:])
