"""kt store load / counts: what an operator sees, and the exit status a pipeline checks."""

from __future__ import annotations

import pandas as pd

from kt.cli import main
from kt.sim import generate_world, preset


def test_store_load_reports_rejected_rows_and_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KT_HOME", str(tmp_path / "home"))
    world = tmp_path / "world"
    generate_world(preset("tiny"), world)
    db = f"sqlite:///{tmp_path / 'kt.db'}"
    assert main(["store", "load", str(world), "--db-url", db]) == 0
    out = capsys.readouterr()
    assert "new events" in out.out and out.err == ""

    # a second part file with one good and one bad event (a negative dwell time)
    good = pd.read_parquet(world / "events" / "part-00000.parquet").iloc[:2].copy()
    good["event_id"] = ["late-good", "late-bad"]
    good.loc[1, "dwell_seconds"] = -5.0
    good.to_parquet(world / "events" / "part-00001.parquet", index=False)
    assert main(["store", "load", str(world), "--db-url", db]) == 1
    out = capsys.readouterr()
    assert "1 rows rejected" in out.err and "events:" in out.out and "1 rejected" in out.out
    assert "1 new events" in out.out  # the good row is loaded all the same
    quarantined = [p for p in (tmp_path / "home").rglob("*events*") if p.is_file()]
    assert quarantined and "late-bad" in quarantined[0].read_text()


def test_store_load_labels_events_with_the_configured_rule(tmp_path, monkeypatch):
    """KT_OUTCOME_RULE reaches the store (and with it the API, which labels ingest with the same
    Settings.outcome_rule): ambiguous events stored as 0 instead of unlabelled."""
    from kt.store import EventStore

    world = tmp_path / "world"
    generate_world(preset("tiny"), world)
    outcomes = {}
    for name, rule in (("default", None), ("zero", "ambiguous: zero\n")):
        monkeypatch.setenv("KT_HOME", str(tmp_path / name))
        if rule:
            (tmp_path / "rule.yaml").write_text(rule)
            monkeypatch.setenv("KT_OUTCOME_RULE", str(tmp_path / "rule.yaml"))
        db = f"sqlite:///{tmp_path / name}.db"
        assert main(["store", "load", str(world), "--db-url", db]) == 0
        store = EventStore(db)
        outcomes[name] = store.events_frame()["outcome"]
        store.close()
    assert outcomes["default"].isna().sum() > 0  # the tiny world has ambiguous events
    assert outcomes["zero"].isna().sum() == 0
    assert (outcomes["zero"] == 0).sum() == (outcomes["default"] == 0).sum() + outcomes["default"].isna().sum()
