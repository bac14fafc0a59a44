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
