from __future__ import annotations

from kt.cli import main


def test_kt_sim_writes_a_world_and_prints_a_summary(tmp_path, capsys):
    assert main(["sim", "--preset", "tiny", "--out", str(tmp_path / "w"), "--users", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "users 20" in out and str(tmp_path / "w") in out
    assert (tmp_path / "w" / "events" / "part-00000.parquet").exists()
    assert (tmp_path / "w" / "world.json").exists()


def test_kt_sim_rejects_bad_arguments(tmp_path, capsys):
    assert main(["sim", "--preset", "huge", "--out", str(tmp_path)]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["sim", "--preset", "tiny", "--users", "0", "--out", str(tmp_path)]) == 2
    assert "--users must be >= 1" in capsys.readouterr().err
