"""MLflow tracking and registry against a temporary SQLite store."""

import os

import numpy as np
import pandas as pd
import pytest
from test_trainer import tiny_config

from kt.config import Settings
from kt.train import tracking
from kt.train.evaluate import predict
from kt.train.metrics import plot_reliability
from kt.train.trainer import train

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(home=tmp_path_factory.mktemp("kthome"), registered_model="ktpath-test")


def _tracked_run(settings, splits, out, seed=7):
    config = tiny_config(max_epochs=2, seed=seed)
    tracker = tracking.MLflowTracker(settings, run_name="t", tags={"data": "synthetic"})
    tracker.log_params({**config.to_dict(), "data": "synthetic"})
    tracker.set_tags({f"system.{k}": v for k, v in tracking.system_info().items()})
    res = train(config, splits, tracker=tracker, checkpoint_dir=out)
    y, p = res.test_predictions["test"]
    tracker.log_artifact(plot_reliability(y, p, out / "reliability_test.png"), "plots")
    tracker.log_artifact(res.checkpoint_path, "checkpoint")
    tracker.log_metrics({"test_auc": res.test_metrics["test"]["auc"]}, step=res.best_epoch)
    version = tracker.register_checkpoint(res.checkpoint_path, tags={"data": "synthetic"})
    tracker.finish()
    return tracker.run_id, version, res


def test_run_is_logged_registered_promoted_and_served(settings, tiny_splits, tmp_path):
    run_id, version, res = _tracked_run(settings, tiny_splits, tmp_path / "a")
    client = tracking._client(settings)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "dkt" and run.data.params["model_params.dim"] == "16"
    assert run.data.tags["system.torch_version"] and "system.cpu_count" in run.data.tags
    steps = [m.step for m in client.get_metric_history(run_id, "valid_auc")]
    assert steps == [0, 1]
    assert [m.value for m in client.get_metric_history(run_id, "valid_auc")] == [h["valid_auc"] for h in res.history]
    assert "test_auc" in run.data.metrics
    artifacts = {f.path for d in ("checkpoint", "plots") for f in client.list_artifacts(run_id, d)}
    assert artifacts == {"checkpoint/best.pt", "plots/reliability_test.png"}
    # the artifact store lives under the settings' artifact root
    assert any(settings.mlflow_artifact_root.rglob("best.pt"))

    assert version == 1
    assert tracking.champion_version(settings) is None
    with pytest.raises(LookupError, match="champion"):
        tracking.load_champion(settings)
    assert tracking.promote(settings) == 1
    assert tracking.champion_version(settings) == 1

    loaded = tracking.load_champion(settings)
    assert loaded.meta["version"] == 1
    _, p_ref = predict(res.model, tiny_splits.test, 64, device="cpu")
    _, p_got = predict(loaded.model, tiny_splits.test, 64, device="cpu")
    assert np.array_equal(p_ref, p_got)
    assert loaded.concept_vocab.tokens == tiny_splits.meta["concept_vocab"].tokens

    # a second run: default promote takes the latest, --version / --run-id / --best-by pick others
    run2, version2, res2 = _tracked_run(settings, tiny_splits, tmp_path / "b", seed=8)
    assert version2 == 2
    assert tracking.promote(settings) == 2 and tracking.champion_version(settings) == 2
    assert tracking.promote(settings, version=1) == 1
    assert tracking.promote(settings, run_id=run2) == 2
    best = 1 if res.test_metrics["test"]["auc"] >= res2.test_metrics["test"]["auc"] else 2
    assert tracking.promote(settings, best_by="test_auc", data="synthetic") == best
    # the cause is the data filter, not the metric: the tags there are are listed
    message = "no version of 'ktpath-test' is tagged data='other'; the data tags are: 'synthetic'"
    with pytest.raises(LookupError, match=message):
        tracking.promote(settings, best_by="test_auc", data="other")
    with pytest.raises(LookupError, match="has run metric 'test_nope'"):
        tracking.promote(settings, best_by="test_nope", data="synthetic")
    with pytest.raises(LookupError):
        tracking.promote(settings, version=99)


def test_registered_model_works_as_an_mlflow_pyfunc(settings, tiny_splits, tmp_path):
    import mlflow

    run_id, version, res = _tracked_run(settings, tiny_splits, tmp_path / "c")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{settings.registered_model}/{version}")
    seq = tiny_splits.test.sequence(0)
    df = pd.DataFrame({"items": [seq["items"].tolist()], "concepts": [seq["concepts"].tolist()],
                       "responses": [seq["responses"].tolist()]})
    out = model.predict(df)
    assert len(out) == 1 and len(out[0]) == len(seq["items"])
    assert all(0.0 < v < 1.0 for v in out[0])


def test_flatten():
    assert tracking.flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == {"a": 1, "b.c": 2, "b.d.e": 3}


def test_bad_model_uris_say_what_is_accepted(settings):
    forms = "use models:/NAME/VERSION, models:/NAME@ALIAS"
    # was MLflow's multi-line "failures occurred while downloading" report, cut to its first line
    with pytest.raises(tracking.ModelURIError, match=f"'garbage' is not a model URI; {forms}"):
        tracking.load_model_uri(settings, "garbage")
    with pytest.raises(tracking.ModelURIError, match="is not a model URI"):
        tracking.load_model_uri(settings, "models:/a/b/c")
    for uri in ("models:/ktpath-test/99", "models:/ktpath-test@nope", "runs:/0123abcd/checkpoint"):
        with pytest.raises(tracking.ModelURIError, match=f"'{uri}': not found in sqlite:.*; {forms}") as info:
            tracking.load_model_uri(settings, uri)
        assert "\n" not in str(info.value)
