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


def test_kt_sim_names_what_it_cannot_build(tmp_path, capsys):
    for args, words in ((["--topics", "2"], "n_topics must be >= max_interests"),
                        (["--seed", "-1"], "seed must be an integer >= 0"),
                        (["--start", "soon"], "start must be an ISO date"),
                        (["--out", ""], "--out: an empty path")):
        out = [] if "--out" in args else ["--out", str(tmp_path / "w")]
        assert main(["sim", "--preset", "tiny", *out, *args]) == 2, args
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (args, err)
    # a one-item catalog still has an item from before day 0 for the popular pool
    assert main(["sim", "--preset", "tiny", "--items", "1", "--users", "5", "--out", str(tmp_path / "one")]) == 0


def test_kt_sim_never_replaces_a_directory_that_is_not_a_world(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "events").mkdir(parents=True)
    (mine / "events" / "my-own-log.csv").write_text("x\n")
    assert main(["sim", "--preset", "tiny", "--out", str(mine)]) == 2
    assert "not a simulated world" in capsys.readouterr().err
    assert (mine / "events" / "my-own-log.csv").read_text() == "x\n"


def test_a_failed_generation_leaves_the_old_world_whole(tmp_path, monkeypatch):
    import json

    import pytest

    import kt.sim.generate as gen

    world = tmp_path / "w"
    gen.generate_world(gen.SimConfig(n_topics=12, n_items=300, n_users=20, days=3), world)
    before = {p.relative_to(world): p.read_bytes() for p in world.rglob("*") if p.is_file()}
    (world / "notes.txt").write_text("mine")  # not a simulator output: kept across regenerations

    def broken(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gen, "simulate_chunk", broken)
    with pytest.raises(RuntimeError):
        gen.generate_world(gen.SimConfig(n_topics=5, n_items=100, n_users=20, days=3), world)
    after = {p.relative_to(world): p.read_bytes() for p in world.rglob("*") if p.is_file() and p.name != "notes.txt"}
    assert after == before and json.loads((world / "world.json").read_text())["config"]["n_topics"] == 12
    assert not list(tmp_path.glob(".w.generating-*"))  # no scratch left behind
    monkeypatch.undo()
    gen.generate_world(gen.SimConfig(n_topics=5, n_items=100, n_users=20, days=3), world)
    assert json.loads((world / "world.json").read_text())["config"]["n_topics"] == 5
    assert (world / "notes.txt").read_text() == "mine"
