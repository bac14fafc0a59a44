"""The main job, end to end on the tiny preset: every artefact the newcomer is pointed to exists."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kt.config import Settings
from kt.demo import DemoConfig, run_demo


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return Settings(home=tmp_path, device="cpu")


def test_demo_runs_the_whole_pipeline(settings):
    lines: list[str] = []
    config = DemoConfig(preset="tiny", models=("dkt",), max_epochs=2, patience=1, show_users=2, eval_users=4, eval_steps=2)
    out = run_demo(settings, config, echo=lines.append)
    text = "\n".join(lines)

    # world, champion, mastery table, store, policy comparison
    assert (settings.world_dir / "world.json").is_file()
    assert out["models"]["champion_version"] == out["models"]["runs"]["dkt"]["version"] == 1
    mastery = pd.read_parquet(out["mastery"]["path"])
    assert {"user_id", "topic_id", "mastery", "stage", "n_obs", "updated_at"} <= set(mastery.columns)
    assert mastery["mastery"].between(0, 1).all() and mastery["user_id"].nunique() > 10
    assert out["store"]["events_inserted"] > 0
    evaluation = json.loads((settings.data_dir / "planner_eval.json").read_text())
    assert {r["policy"] for r in evaluation["results"]} == {"random", "popularity", "pixie", "kt_greedy", "planner"}

    # the closing hints name the explorer, the API with its docs, and the MLflow UI
    assert "kt explore" in text and "/docs" in text and "mlflow ui --backend-store-uri" in text
    assert f"/v1/users/{out['path_user']}/path" in text
