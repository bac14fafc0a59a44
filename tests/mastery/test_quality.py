"""Quality against the simulator's true mastery: a trained model ranks topics like the truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kt.cli import main
from kt.mastery import TopicCatalog
from kt.mastery.bkt import BKTParams, bkt_trace, fit_bkt
from kt.mastery.quality import evaluate_quality, format_report


def test_trained_model_tracks_true_mastery(world, trained, items, topics, interactions):
    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    # held-out users: on training users a model that ignores the answers still scores AUC 0.91
    report = evaluate_quality(loaded.model, cat, world, split_seed=0, interactions=interactions)
    kt = report["kt_model"]
    assert kt["spearman"] > 0.25, format_report(report)
    # measured: 0.856 for the trained DKT, 0.782 for one that never sees the responses
    assert kt["success"]["auc"] > 0.82 and kt["success"]["ece"] <= 0.3, format_report(report)
    for baseline in ("running_accuracy", "bkt"):
        r = report[baseline]
        assert np.isfinite([r["spearman"], r["mastery_mae"], r["stage_accuracy"], r["success"]["auc"]]).all()
        assert r["spearman"] > 0.0
    assert "| KT (dkt) |" in format_report(report)


def test_successes_raise_mastery_and_failures_lower_it(trained, items, topics, interactions):
    from kt.mastery import MasteryConfig, MasteryTracker

    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    user = interactions["user_id"].value_counts().index[0]
    history = interactions[interactions["user_id"] == user].rename(columns={"t": "timestamp"})
    base = MasteryTracker(loaded.model, loaded.item_vocab, loaded.concept_vocab, cat, MasteryConfig())
    base.observe_many(history)
    topic = base.topic_mastery(user).sort_values("mastery")["topic_id"].iloc[0]  # far from saturation
    on_topic = items[items["topics"].astype(str).str.split("|").str[0] == topic]["content_id"].astype(str).head(10)
    start = history["timestamp"].max()
    after = {}
    for outcome in (1, 0):
        extra = pd.DataFrame({"user_id": user, "content_id": on_topic.to_numpy(), "topic_id": topic,
                              "outcome": outcome, "timestamp": start + 60.0 * (1 + np.arange(len(on_topic)))})
        tracker = MasteryTracker(loaded.model, loaded.item_vocab, loaded.concept_vocab, cat, MasteryConfig())
        tracker.observe_many(pd.concat([history, extra], ignore_index=True))
        table = tracker.topic_mastery(user).set_index("topic_id")
        after[outcome] = float(table.loc[topic, "mastery"])
    assert after[1] > after[0] + 0.05, after  # a model that ignores the answers gives equal values


def test_bkt_em_recovers_parameters():
    rng = np.random.default_rng(0)
    true = BKTParams(prior=0.2, learn=0.15, guess=0.2, slip=0.08)
    seqs = []
    for _ in range(400):
        known, ys = rng.random() < true.prior, []
        for _ in range(12):
            ys.append(float(rng.random() < (1 - true.slip if known else true.guess)))
            known = known or rng.random() < true.learn
        seqs.append(np.array(ys))
    fit = fit_bkt(seqs, iters=60)
    assert abs(fit.learn - true.learn) < 0.06 and abs(fit.guess - true.guess) < 0.06 and abs(fit.slip - true.slip) < 0.06
    pred, known = bkt_trace(np.ones(10), fit)
    assert np.all(np.diff(pred) > 0) and known > 0.9  # successes raise the estimate


def test_cli_quality_writes_report(tmp_path, world, trained, capsys):
    ckpt, _ = trained
    out = tmp_path / "q.json"
    assert main(["mastery", "quality", "--world", str(world), "--checkpoint", str(ckpt), "--out", str(out), "--no-bkt", "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert "kt_model" in report and "bkt" not in report
    assert "running accuracy" in capsys.readouterr().out


def test_quality_does_not_depend_on_the_order_of_the_topics(world, trained, items, topics, interactions):
    """The scorer sorts topics by id; the report must line its estimates up with the truth in
    whatever order the catalog holds the topics (a topics table need not be sorted)."""
    _, loaded = trained
    reports = []
    for order in (topics, list(reversed(topics))):
        cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, order)
        reports.append(evaluate_quality(loaded.model, cat, world, split_seed=0, interactions=interactions, bkt=False))
    for method in ("kt_model", "running_accuracy"):
        a, b = reports[0][method], reports[1][method]
        for key in ("spearman", "spearman_all", "mastery_mae", "stage_accuracy"):
            assert a[key] == pytest.approx(b[key]), (method, key)
