"""``kt data validate`` / ``kt data convert``: exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from kt.cli import main
from kt.config import Settings

BAD_EVENT = "e9,u1,nope,2024-02-01T10:00:00Z,,0.5,10,2,\n"


def run(capsys, *argv):
    code = main(["data", *map(str, argv)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_validate_clean_world(world_dir, tmp_path, capsys):
    code, out, _ = run(capsys, "validate", world_dir, "--quarantine", tmp_path / "q")
    assert code == 0
    assert len(out.strip().splitlines()) == 7 and "events:" in out


def test_validate_rejected_rows_exit_1(world_dir, tmp_path, capsys):
    events = Path(world_dir) / "events.csv"
    events.write_text(events.read_text() + BAD_EVENT)
    code, out, _ = run(capsys, "validate", world_dir, "--quarantine", tmp_path / "q")
    assert code == 1 and "unknown_id 1" in out
    rejected = (tmp_path / "q" / "events.rejected.csv").read_text()
    assert "nope" in rejected and ",5,content_id,unknown_id," in rejected  # data row 5 (file line 6)


def test_validate_one_table_of_a_world_and_stale_quarantine(world_dir, tmp_path, capsys):
    q = tmp_path / "q"
    q.mkdir()
    (q / "items.rejected.csv").write_text("stale\n")
    code, out, _ = run(capsys, "validate", world_dir, "--table", "items", "--quarantine", q)
    assert code == 0 and out.startswith("items:") and len(out.strip().splitlines()) == 1
    assert "foreign keys not checked: items.topics->topics.topic_id" in out
    assert not (q / "items.rejected.csv").exists()


def test_validate_single_file_and_file_errors(tmp_path, capsys):
    good = tmp_path / "topics.csv"
    good.write_text("topic_id,name,parent_id\nt1,A,\nt2,B,t1\nt2,C,\n")
    code, out, _ = run(capsys, "validate", good, "--quarantine", tmp_path / "q")
    assert code == 1 and "duplicate_key 1" in out
    assert (tmp_path / "q" / "topics.rejected.csv").exists()
    empty = tmp_path / "events.csv"
    empty.write_text("")
    code, out, err = run(capsys, "validate", empty, "--quarantine", tmp_path / "q")
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{empty}:-: -: empty file" in err
    code, _, err = run(capsys, "validate", tmp_path / "what.csv")
    assert code == 2 and "not found" in err
    odd = tmp_path / "stuff.csv"
    odd.write_text("a\n1\n")
    code, _, err = run(capsys, "validate", odd)
    assert code == 2 and "--table" in err


def test_convert(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("1,u1\n1,2\n3,3\n1,0\n")
    code, out, _ = run(capsys, "convert", src, tmp_path / "out.csv", "--from", "akt", "--to", "pykt")
    assert code == 0 and "1 sequences, 2 interactions" in out
    assert (tmp_path / "out.csv").read_text() == 'fold,uid,questions,concepts,responses\n0,u1,"0,1","2,2","1,0"\n'
    src.write_text("1,u1\n1,2\n")
    code, _, err = run(capsys, "convert", src, tmp_path / "out2.csv", "--from", "akt", "--to", "dkvmn")
    assert code == 2 and "truncated" in err


def test_defaults_quarantine_under_data_dir(world_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KT_HOME", str(tmp_path / "home"))
    events = Path(world_dir) / "events.csv"
    events.write_text(events.read_text() + BAD_EVENT)
    code, out, _ = run(capsys, "validate", world_dir)
    assert code == 1 and "unknown_id 1" in out
    assert (Settings.from_env().quarantine_dir_for(world_dir) / "events.rejected.csv").exists()
    # a clean load of another events file keeps them (one quarantine folder per source)
    other = tmp_path / "other" / "events.csv"
    other.parent.mkdir()
    other.write_text(events.read_text().removesuffix(BAD_EVENT))
    code, out, _ = run(capsys, "validate", other)
    assert code == 0 and "0 rejected" in out
    assert (Settings.from_env().quarantine_dir_for(world_dir) / "events.rejected.csv").exists()


def test_table_and_quarantine_options_are_checked(world_dir, tmp_path, capsys):
    code, _, err = run(capsys, "validate", world_dir / "events.csv", "--table", "bogus")
    assert code == 2 and "--table 'bogus': unknown table; one of" in err
    a_file = tmp_path / "q.txt"
    a_file.write_text("")
    code, _, err = run(capsys, "validate", world_dir, "--quarantine", a_file)
    assert code == 2 and "exists and is not a directory" in err


@pytest.mark.parametrize("argv", [["validate"], ["convert", "a", "b", "--from", "xml", "--to", "akt"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as ei:
        main(["data", *argv])
    assert ei.value.code == 2


def test_a_table_written_twice_is_an_error_not_half_read(world_dir, tmp_path, capsys):
    # events.csv beside an events/ folder: reading either alone would leave the other's rows out
    parts = Path(world_dir) / "events"
    parts.mkdir()
    (parts / "part-0.csv").write_text((Path(world_dir) / "events.csv").read_text())
    code, _, err = run(capsys, "validate", world_dir, "--quarantine", tmp_path / "q")
    assert code == 2 and "the events table is there twice (events/ and events.csv); keep one" in err
