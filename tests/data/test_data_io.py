"""Validated loading: one test per class of bad input, quarantine contents, worlds, per-item ingest errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from kt.data.io import find_cycle, load_table, load_world, validate_events
from kt.data.schema import EVENTS, ITEMS, DataError

EVENTS_HEADER = "event_id,user_id,content_id,timestamp,folder_id,read_fraction,dwell_seconds,n_highlights,quiz_correct"
NOW = pd.Timestamp("2025-01-01", tz="UTC")
KNOWN = {
    "users.user_id": {"u1", "u2"},
    "items.content_id": {"c1", "c2", "c3"},
    "folders.folder_id": {"f1"},
}


def events_file(tmp_path: Path, rows: list[str], name: str = "events.csv") -> Path:
    path = tmp_path / name
    path.write_text(EVENTS_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


GOOD = "e1,u1,c1,2024-02-01T10:00:00Z,f1,0.9,120,3,"


def load_events(path: Path, tmp_path: Path, known=None):
    return load_table(path, EVENTS, known_ids=known if known is not None else KNOWN,
                      quarantine_dir=tmp_path / "q", now=NOW)


def assert_rejected(res, tmp_path: Path, row: int, field: str, code: str, n_clean: int):
    assert len(res.clean) == n_clean
    bad = res.rejected[res.rejected["_row"] == row]
    assert len(bad) == 1, res.rejected
    assert bad["_field"].iloc[0] == field
    assert bad["_code"].iloc[0] == code
    assert res.summary.get(code, 0) >= 1
    q = pd.read_csv(tmp_path / "q" / "events.rejected.csv", dtype=str, keep_default_na=False)
    assert row in q["_row"].astype(int).tolist()
    assert set(q["_file"]) == {str(res.files[0])}
    assert "events.rejected.csv" in res.summary_line()


# ----------------------------------------------------------------------------- row-level
def test_wrong_types_are_quarantined_good_rows_kept(tmp_path):
    path = events_file(tmp_path, [GOOD, "e2,u1,c1,2024-02-01T10:00:00Z,,lots,120,3,", "e3,u1,c1,2024-02-01T10:00:00Z,,0.5,10,2.5,"])
    res = load_events(path, tmp_path)
    assert_rejected(res, tmp_path, row=2, field="read_fraction", code="bad_type", n_clean=1)
    assert_rejected(res, tmp_path, row=3, field="n_highlights", code="bad_type", n_clean=1)
    assert "'lots'" in res.rejected.loc[res.rejected["_row"] == 2, "_reason"].iloc[0]
    # the original value is kept in the quarantine file
    assert res.rejected.loc[res.rejected["_row"] == 2, "read_fraction"].iloc[0] == "lots"
    assert res.clean["event_id"].tolist() == ["e1"]
    assert res.clean["n_highlights"].dtype == "int64"


def test_out_of_range_and_bad_choice(tmp_path):
    path = events_file(tmp_path, [GOOD, "e2,u1,c1,2024-02-01T10:00:00Z,,1.5,120,3,", "e3,u1,c1,2024-02-01T10:00:00Z,,0.5,10,2,0.5"])
    res = load_events(path, tmp_path)
    assert_rejected(res, tmp_path, row=2, field="read_fraction", code="out_of_range", n_clean=1)
    assert_rejected(res, tmp_path, row=3, field="quiz_correct", code="out_of_range", n_clean=1)


def test_unknown_foreign_ids(tmp_path):
    path = events_file(tmp_path, [GOOD, "e2,u1,c999,2024-02-01T10:00:00Z,,0.5,10,2,", "e3,u1,c1,2024-02-01T10:00:00Z,f9,0.5,10,2,"])
    res = load_events(path, tmp_path)
    assert_rejected(res, tmp_path, row=2, field="content_id", code="unknown_id", n_clean=1)
    assert_rejected(res, tmp_path, row=3, field="folder_id", code="unknown_id", n_clean=1)
    assert "c999" in res.rejected["_reason"].iloc[0]


def test_duplicate_event_ids_within_file_and_against_known(tmp_path):
    path = events_file(tmp_path, [GOOD, GOOD.replace("0.9", "0.8"), "e7,u1,c1,2024-02-01T10:00:00Z,,0.5,10,2,"])
    res = load_events(path, tmp_path, known={**KNOWN, "events.event_id": {"e7"}})
    assert_rejected(res, tmp_path, row=2, field="event_id", code="duplicate_key", n_clean=1)
    assert_rejected(res, tmp_path, row=3, field="event_id", code="duplicate_key", n_clean=1)
    assert res.clean["read_fraction"].tolist() == [0.9]  # first occurrence wins


def test_impossible_timestamps(tmp_path):
    rows = [GOOD, "e2,u1,c1,1970-01-01T00:00:00Z,,0.5,10,2,", "e3,u1,c1,2031-01-01T00:00:00Z,,0.5,10,2,",
            "e4,u1,c1,yesterday,,0.5,10,2,"]
    res = load_events(events_file(tmp_path, rows), tmp_path)
    for row in (2, 3, 4):
        assert_rejected(res, tmp_path, row=row, field="timestamp", code="bad_timestamp", n_clean=1)
    assert str(res.clean["timestamp"].dt.tz) == "UTC"


def test_missing_required_values(tmp_path):
    res = load_events(events_file(tmp_path, [GOOD, "e2,,c1,2024-02-01T10:00:00Z,,0.5,10,2,"]), tmp_path)
    assert_rejected(res, tmp_path, row=2, field="user_id", code="missing", n_clean=1)


def test_malformed_middle_row_is_quarantined(tmp_path):
    res = load_events(events_file(tmp_path, [GOOD, "e2,u1,c1", "e3,u1,c1,2024-02-01T10:00:00Z,,0.5,10,2,"]), tmp_path)
    assert_rejected(res, tmp_path, row=2, field="-", code="malformed_row", n_clean=2)


def test_a_row_with_extra_fields_is_quarantined_whole(tmp_path):
    res = load_events(events_file(tmp_path, [GOOD, GOOD.replace("e1", "e2") + ",x,y", GOOD.replace("e1", "e3")]), tmp_path)
    assert_rejected(res, tmp_path, row=2, field="-", code="malformed_row", n_clean=2)
    q = pd.read_csv(tmp_path / "q" / "events.rejected.csv", dtype=str, keep_default_na=False)
    assert q.loc[q["_row"] == "2", "_extra"].tolist() == ["x,y"]


def test_list_foreign_keys_and_patterns(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        "content_id,title,url,language,topics,difficulty,kind,created_at\n"
        "c1,A,u,en,t1|t2,0.1,article,2024-01-01T00:00:00Z\n"
        "c2,B,u,en,t1|t9,0.1,article,2024-01-01T00:00:00Z\n"
        "c3,C,u,english,t1,0.1,article,2024-01-01T00:00:00Z\n"
        "c4,D,u,en,t1,0.1,tweet,2024-01-01T00:00:00Z\n",
        encoding="utf-8",
    )
    res = load_table(path, ITEMS, known_ids={"topics.topic_id": {"t1", "t2"}}, now=NOW)
    assert res.clean["content_id"].tolist() == ["c1"]
    by_row = res.rejected.set_index("_row")
    assert by_row.loc[2, "_field"] == "topics" and "t9" in by_row.loc[2, "_reason"]
    assert by_row.loc[3, "_field"] == "language"
    assert by_row.loc[4, "_field"] == "kind"
    assert res.quarantine_path is None  # no quarantine dir given: returned, not written


def test_unchecked_foreign_keys_are_reported(tmp_path):
    res = load_table(events_file(tmp_path, [GOOD]), EVENTS, now=NOW)
    assert len(res.clean) == 1
    assert "events.content_id->items.content_id" in res.unchecked_foreign_keys
    assert "not checked" in res.summary_line()


# ----------------------------------------------------------------------------- file-level
def assert_data_error(exc: DataError, path: Path, row, field: str, words: str):
    msg = str(exc)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{row if row is not None else '-'}: {field}: "), msg
    assert words in msg
    assert exc.file == str(path) and exc.row == row and exc.field == field


def test_empty_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, None, "-", "empty")
    path.write_text(EVENTS_HEADER + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_events(path, tmp_path)


def test_truncated_csv_last_line(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_HEADER + "\n" + GOOD + "\n" + "e2,u1,c1,2024-02-0", encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, 2, "timestamp", "truncated")


def test_truncated_csv_unterminated_quote(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_HEADER + "\n" + GOOD + '\ne2,u1,"c1,2024', encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert ei.value.row == 2 and "truncated" in str(ei.value)


def test_truncated_parquet(tmp_path):
    df = pd.read_csv(events_file(tmp_path, [GOOD]), dtype=str)
    path = tmp_path / "events.parquet"
    df.to_parquet(path)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, None, "-", "Parquet")


def test_bad_encoding_names_row_and_field(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes((EVENTS_HEADER + "\n" + GOOD + "\n").encode() + b"e2,u\xff1,c1,2024-02-01T10:00:00Z,,0.5,10,2,\n")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, 2, "user_id", "UTF-8")


def test_missing_required_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("event_id,user_id,timestamp\ne1,u1,2024-02-01T10:00:00Z\n", encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, None, "content_id", "missing required column")


# ----------------------------------------------------------------------------- parquet, parts, worlds
def test_parquet_part_directory_dedupes_across_parts(tmp_path):
    df = pd.read_csv(events_file(tmp_path, [GOOD, "e2,u2,c3,2024-02-02T09:00:00Z,,0.5,30,1,1.0"]), dtype=str)
    parts = tmp_path / "events"
    parts.mkdir()
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["read_fraction"] = df["read_fraction"].astype(float)
    df.to_parquet(parts / "part-0.parquet")
    df.iloc[[1]].to_parquet(parts / "part-1.parquet")  # e2 again
    res = load_events(parts, tmp_path)
    assert res.clean["event_id"].tolist() == ["e1", "e2"]
    assert res.rejected["_file"].tolist() == [str(parts / "part-1.parquet")]
    assert res.rejected["_row"].tolist() == [1]
    assert res.summary == {"duplicate_key": 1}


def test_load_world_clean(world_dir, tmp_path):
    world = load_world(world_dir, tmp_path / "q", now=NOW)
    assert world.n_rejected == 0
    assert len(world.events) == 4 and len(world.topics) == 3 and len(world.prerequisites) == 2
    assert world.primary_topic()["c2"] == "t2"
    assert world.item_topics().query("content_id == 'c2'")["topic_id"].tolist() == ["t2", "t1"]
    assert not (tmp_path / "q").exists()
    assert all("0 rejected" in line for line in world.summary_lines())


def test_load_world_cross_table_foreign_keys(make_world, tmp_path):
    bad_items = (
        "content_id,title,url,language,topics,difficulty,kind,created_at\n"
        "c1,Intro,https://x/1,en,t1,0.2,article,2024-01-01T00:00:00Z\n"
        "c2,Limits,https://x/2,fr,tX,0.5,video,2024-01-02T00:00:00Z\n"
        "c3,Spaces,https://x/3,ko,t3,0.9,paper,2024-01-03T00:00:00Z\n"
    )
    world = load_world(make_world({"items": bad_items}), tmp_path / "q", now=NOW)
    # c2 is rejected in items, so the event on c2 is rejected in events as an unknown id
    assert world.items["content_id"].tolist() == ["c1", "c3"]
    assert "e2" not in set(world.events["event_id"])
    assert world.results["events"].summary == {"unknown_id": 1}
    assert (tmp_path / "q" / "items.rejected.csv").exists() and (tmp_path / "q" / "events.rejected.csv").exists()


def test_load_world_prerequisite_cycle(make_world, tmp_path):
    world = make_world({"prerequisites": "topic_id,prerequisite_id\nt2,t1\nt3,t2\nt1,t3\n"})
    with pytest.raises(DataError, match=r"cycle: t\d -> t\d -> t\d -> t\d"):
        load_world(world, tmp_path / "q", now=NOW)


def test_find_cycle():
    edges = pd.DataFrame({"topic_id": ["b", "c", "d"], "prerequisite_id": ["a", "b", "b"]})
    assert find_cycle(edges) is None
    edges = pd.DataFrame({"topic_id": ["a"], "prerequisite_id": ["a"]})
    assert find_cycle(edges) == ["a", "a"]


def test_validate_events_per_item_errors():
    batch = [
        {"event_id": "e1", "user_id": "u1", "content_id": "c1", "timestamp": "2024-02-01T10:00:00Z",
         "read_fraction": 0.5, "dwell_seconds": 10, "n_highlights": 1},
        {"event_id": "e2", "user_id": "u1", "content_id": "nope", "timestamp": "2024-02-01T10:00:00Z",
         "read_fraction": 0.5, "dwell_seconds": 10, "n_highlights": 1},
        {"event_id": "old", "user_id": "u1", "content_id": "c1", "timestamp": "2024-02-01T10:00:00Z",
         "read_fraction": 0.5, "dwell_seconds": 10, "n_highlights": 1},
        {"event_id": "e4", "user_id": "u1", "content_id": "c1", "timestamp": "2024-02-01T10:00:00Z",
         "read_fraction": -1, "dwell_seconds": 10, "n_highlights": 1},
    ]
    accepted, rejected = validate_events(batch, {"c1"}, {"old"}, now=NOW)
    assert accepted["event_id"].tolist() == ["e1"] and accepted["index"].tolist() == [0]
    assert [(r["index"], r["field"]) for r in rejected] == [(1, "content_id"), (2, "event_id"), (3, "read_fraction")]
    assert pd.isna(accepted["quiz_correct"].iloc[0]) and accepted["folder_id"].iloc[0] is None


def test_simulator_world_satisfies_the_contract(tmp_path):
    """The simulator's output (kt.sim) loads with no rejected rows and no unchecked foreign keys."""
    from kt.sim.config import SimConfig
    from kt.sim.generate import generate_world

    config = SimConfig(seed=3, n_topics=8, n_items=120, n_users=30, days=5)
    generate_world(config, tmp_path / "w")
    end = pd.Timestamp(config.start, tz="UTC") + pd.Timedelta(days=config.days)  # independent of the clock
    world = load_world(tmp_path / "w", tmp_path / "q", now=end)
    assert world.n_rejected == 0, world.summary_lines()
    assert len(world.events) > 0 and len(world.topics) == 8
    assert not any(r.unchecked_foreign_keys for r in world.results.values())


def test_integers_beyond_float_precision_are_rejected_not_wrapped(tmp_path):
    # int64 would wrap 99999999999999999999 to a negative count
    path = events_file(tmp_path, [GOOD, "e2,u1,c1,2024-02-01T10:00:00Z,,0.5,10,99999999999999999999,"])
    res = load_events(path, tmp_path)
    assert_rejected(res, tmp_path, row=2, field="n_highlights", code="bad_type", n_clean=1)
    assert res.clean["n_highlights"].tolist() == [3]


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = events_file(tmp_path, [GOOD])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    res = load_events(path, tmp_path)
    assert res.clean["event_id"].tolist() == ["e1"] and res.n_rejected == 0


@pytest.mark.parametrize("header, field, words", [
    (EVENTS_HEADER.replace("folder_id", "folderid"), "folderid", "unknown column"),
    (EVENTS_HEADER + ",quiz_answer", "quiz_answer", "unknown column"),
    (EVENTS_HEADER.replace("quiz_correct", "event_id"), "event_id", "named twice"),
])
def test_unknown_or_repeated_columns_name_the_column(tmp_path, header, field, words):
    path = tmp_path / "events.csv"
    extra = ",1" if header.endswith("quiz_answer") else ""
    path.write_text(header + "\n" + GOOD + extra + "\n", encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, None, field, words)


def test_blank_lines_are_skipped_and_rows_keep_their_numbers(tmp_path):
    path = events_file(tmp_path, [GOOD, "", "e2,u1,c9,2024-02-01T10:00:00Z,,0.5,10,2,", "", ""])
    res = load_events(path, tmp_path)
    assert res.n_read == 2 and res.clean["event_id"].tolist() == ["e1"]
    assert_rejected(res, tmp_path, row=3, field="content_id", code="unknown_id", n_clean=1)


def test_a_header_followed_only_by_blank_lines_is_an_empty_file(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_HEADER + "\n\n\n", encoding="utf-8")
    with pytest.raises(DataError) as ei:
        load_events(path, tmp_path)
    assert_data_error(ei.value, path, None, "-", "empty file")


def test_a_parquet_part_without_rows_is_valid(tmp_path):
    """A generated world can hold a part file with no rows (a user chunk without events)."""
    from kt.sim import generate_world, preset

    world = tmp_path / "world"
    generate_world(preset("tiny"), world)
    ev = pd.read_parquet(world / "events" / "part-00000.parquet")
    ev.iloc[:0].to_parquet(world / "events" / "part-00001.parquet", index=False)
    w = load_world(world)
    assert len(w.events) == len(ev) and w.n_rejected == 0


def test_streamed_parquet_ignores_a_stored_pandas_index_as_load_table_does(world_dir, tmp_path):
    from kt.data.io import iter_table_batches, load_table
    from kt.data.schema import EVENTS

    events = load_table(Path(world_dir) / "events.csv", EVENTS).clean
    shuffled = events.sample(frac=1.0, random_state=0)  # a non-default index: pandas stores it as a column
    path = tmp_path / "events.parquet"
    shuffled.to_parquet(path)
    assert load_table(path, EVENTS).rejected.empty
    batches = list(iter_table_batches(path, EVENTS, batch_rows=3))
    assert [len(b.frame) for b in batches] == [3, 1]
    assert all("__index_level_0__" not in b.frame.columns for b in batches)
    assert pd.concat([b.frame for b in batches])["_row"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("bad_at", [None, 3, 80])
def test_a_streamed_csv_gives_the_rows_and_the_malformed_ones_the_exact_parser_gives(tmp_path, monkeypatch, bad_at):
    """Streamed a few hundred bytes at a time; a row pyarrow cannot parse (early, or after
    several blocks were already given) hands the rest of the file to the exact parser, and no
    row is given twice or lost."""
    import kt.data.io as data_io
    from kt.data.io import iter_table_batches

    monkeypatch.setattr(data_io, "CSV_BLOCK_BYTES", 512)
    header = "event_id,user_id,content_id,timestamp,folder_id,read_fraction,dwell_seconds,n_highlights,quiz_correct\n"
    rows = [f"e{i},u1,c1,2024-02-01T10:{i // 60:02d}:{i % 60:02d}Z,,0.9,120,3,\n" for i in range(100)]
    if bad_at is not None:
        rows[bad_at - 1] = rows[bad_at - 1].rstrip("\n") + ",surplus\n"
    path = tmp_path / "events.csv"
    path.write_text(header + "".join(rows))
    batches = list(iter_table_batches(path, EVENTS, batch_rows=16))
    got = pd.concat([b.frame for b in batches], ignore_index=True)
    malformed = [m for b in batches for m in b.malformed]
    expected = [i for i in range(1, 101) if i != bad_at]
    assert got["_row"].tolist() == expected and got["event_id"].tolist() == [f"e{i - 1}" for i in expected]
    assert [(m["_row"], m["_code"], m.get("_extra")) for m in malformed] == (
        [] if bad_at is None else [(bad_at, "malformed_row", "surplus")])
    assert load_table(path, EVENTS).n_read == 100
