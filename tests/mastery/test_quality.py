"""Quality against the simulator's true mastery: a trained model ranks topics like the truth."""

from __future__ import annotations

import json

import numpy as np

from kt.cli import main
from kt.mastery import TopicCatalog
from kt.mastery.bkt import BKTParams, bkt_trace, fit_bkt
from kt.mastery.quality import evaluate_quality, format_report


def test_trained_model_tracks_true_mastery(world, trained, items, topics, interactions):
    _, loaded = trained
    cat = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics)
    report = evaluate_quality(loaded.model, cat, world, split_seed=None, interactions=interactions)
    kt = report["kt_model"]
    assert kt["spearman"] > 0.25, format_report(report)
    assert 0.0 <= kt["success"]["ece"] <= 0.3 and kt["success"]["auc"] > 0.6
    assert 0.0 <= kt["stage_accuracy"] <= 1.0
    for baseline in ("running_accuracy", "bkt"):
        r = report[baseline]
        assert np.isfinite([r["spearman"], r["mastery_mae"], r["stage_accuracy"], r["success"]["auc"]]).all()
        assert r["spearman"] > 0.0
    assert "| KT (dkt) |" in format_report(report)


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
