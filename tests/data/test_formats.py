"""KT file formats: exact round trips on the shared benchmark files, conversions, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kt.config import Settings
from kt.data.formats import read_akt_file, read_dkvmn_file, read_pykt_file, read_sequences, write_file
from kt.data.schema import DataError

DATA = Path(Settings().datasets_dir)
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared KT datasets not found at {DATA} (KT_DATASETS_DIR)")


@needs_data
@pytest.mark.parametrize(
    "fmt, rel",
    [
        ("pykt", "assist2015_pykt/train_valid_sequences.csv"),
        ("pykt", "assist2015_pykt/test_window_sequences.csv"),
        ("pykt", "assist2015_pykt/test.csv"),
        ("akt", "assist2009_pid_akt/assist2009_pid_test1.csv"),
        ("dkvmn", "statics2011_dkvmn/STATICS_train1.csv"),
    ],
)
def test_round_trip_is_byte_exact(fmt, rel, tmp_path):
    from kt.data.formats import get_format

    parsed = get_format(fmt).read(DATA / rel)
    out = tmp_path / "out.csv"
    write_file(out, parsed, fmt)
    assert out.read_bytes() == (DATA / rel).read_bytes()


@needs_data
def test_pykt_sequences_decode_padding_masks_and_ids():
    parsed = read_pykt_file(DATA / "assist2015_pykt/test_window_sequences.csv")
    seqs = parsed.seqs
    assert parsed.pad_to == 200 and "cidxs" in parsed.extras and not seqs.has_item_ids
    assert seqs.lengths.max() == 200 and seqs.concepts.min() == 1 and seqs.concepts.max() == 100
    assert np.array_equal(seqs.items, seqs.concepts)
    # first row: "54,54,54,3,3" padded; raw ids 0-based -> +1
    assert seqs.sequence(0)["concepts"].tolist() == [55, 55, 55, 4, 4]
    # sliding windows evaluate each interaction exactly once
    assert seqs.eval_mask.sum() == 138_458 == len(np.unique(parsed.extras["cidxs"]))


@needs_data
def test_pykt_windows_match_the_unwindowed_file():
    full = read_pykt_file(DATA / "assist2015_pykt/train_valid.csv").seqs
    windows = read_pykt_file(DATA / "assist2015_pykt/train_valid_sequences.csv").seqs
    assert (len(full), full.num_interactions) == (15_275, 544_339)
    assert len(set(windows.user_ids)) == 15_275
    # pyKT drops trailing windows shorter than 3 interactions: 8 interactions in this file
    assert full.num_interactions - windows.num_interactions == 8
    u = int(np.argmax(full.lengths))
    uid = full.user_ids[u]
    rows = np.flatnonzero(windows.user_ids == uid)
    joined = np.concatenate([windows.sequence(r)["concepts"] for r in rows])
    assert np.array_equal(joined, full.sequence(u)["concepts"][: len(joined)])


@needs_data
def test_akt_and_dkvmn_ids_are_raw_ids():
    akt = read_akt_file(DATA / "assist2009_pid_akt/assist2009_pid_train1.csv")
    assert akt.seqs.user_ids[0] == "82295" and akt.user_columns["index"][0] == "1274"
    assert akt.seqs.sequence(0)["items"][:2].tolist() == [1366, 1366]
    assert akt.seqs.sequence(0)["concepts"][:2].tolist() == [7, 9]
    dk = read_dkvmn_file(DATA / "statics2011_dkvmn/STATICS_test.csv")
    assert len(dk.seqs) == 104 and dk.seqs.items.min() >= 1


@needs_data
def test_conversion_preserves_sequences(tmp_path):
    src = read_sequences(DATA / "assist2009_pid_akt/assist2009_pid_test2.csv", "akt")
    write_file(tmp_path / "a.csv", src, "pykt")
    back = read_sequences(tmp_path / "a.csv", "pykt")
    assert back.has_item_ids and list(back.user_ids) == list(src.user_ids)
    for name in ("items", "concepts", "responses", "offsets"):
        assert np.array_equal(getattr(back, name), getattr(src, name))
    write_file(tmp_path / "d.csv", back, "dkvmn")
    dk = read_sequences(tmp_path / "d.csv", "dkvmn")
    assert np.array_equal(dk.items, src.items) and np.array_equal(dk.responses, src.responses)


def test_pykt_padded_write_from_scratch(tmp_path):
    from kt.data.sequences import KTSequences

    seqs = KTSequences.from_lists(["7", "8"], [[1, 2], [3]], [[1, 2], [3]], [[1, 0], [1]], eval_mask=[[1, 1], [1]],
                                  folds=[0, 1], has_item_ids=False)
    from kt.data.formats import write_pykt_file

    write_pykt_file(tmp_path / "s.csv", seqs, pad_to=4)
    assert (tmp_path / "s.csv").read_text() == (
        'fold,uid,concepts,responses,selectmasks\n0,7,"0,1,-1,-1","1,0,-1,-1","1,1,-1,-1"\n1,8,"2,-1,-1,-1","1,-1,-1,-1","1,-1,-1,-1"\n'
    )
    back = read_pykt_file(tmp_path / "s.csv").seqs
    assert back.lengths.tolist() == [2, 1] and back.folds.tolist() == [0, 1]


def test_bad_line_files_name_line_and_field(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("2\n1,2\n1,0\n3\n1,2\n")
    with pytest.raises(DataError, match=r"x.csv:5: -: truncated"):
        read_dkvmn_file(p)
    p.write_text("2\n1,2\n1,0\n3\n1,b,3\n1,0,1\n")
    with pytest.raises(DataError, match=r"x.csv:5: question ids: not an integer: 'b'"):
        read_dkvmn_file(p)
    p.write_text("2\n1,2\n1,0\n3\n1,2,3\n1,0\n")
    with pytest.raises(DataError, match=r"x.csv:6: responses: 2 values, expected 3"):
        read_dkvmn_file(p)
    p.write_text("1,u\n1,2\n1\n1,0\n")
    with pytest.raises(DataError, match=r"x.csv:3: skill ids"):
        read_akt_file(p)
    p.write_text('fold,uid,concepts,responses\n0,1,"1,2","1,2"\n')
    with pytest.raises(DataError, match=r"x.csv:1: responses"):
        read_pykt_file(p)
    p.write_bytes(b"2\n1,2\n1,\xff\n")
    with pytest.raises(DataError, match=r"x.csv:3: -: not valid UTF-8"):
        read_dkvmn_file(p)


@pytest.mark.parametrize("reader, text, expected", [
    (read_dkvmn_file, "3,4\n1,2,3\n1,0,1\n", r"x.csv:1: length: expected one integer"),
    (read_dkvmn_file, "2\n0,2\n1,0\n", r"x.csv:2: question ids: 0 is below 1"),
    (read_dkvmn_file, "2\n1,99999999999999999999\n1,0\n", r"x.csv:2: question ids: integer too large"),
    (read_pykt_file, 'fold,uid,concepts,responses\n0,u1,"1,2","1,0"\n0,u2\n', r"x.csv:2: concepts: no values"),
    (read_pykt_file, 'fold,uid,concepts,responses\n0,u1,"1,-5","1,0"\n', r"x.csv:1: concepts: -5 is below -1"),
    (read_pykt_file, 'fold,uid,concepts,responses\n', r"x.csv:-: -: no data rows"),
    # -1 is padding: with a response it would silently become id 0, the padding index
    (read_pykt_file, 'fold,uid,concepts,responses\n0,u1,"1,2","1,0"\n0,u2,"3,-1","1,1"\n',
     r"x.csv:2: concepts: -1 \(padding\) at a position that has a response"),
])
def test_malformed_ids_and_cells_name_the_line(tmp_path, reader, text, expected):
    p = tmp_path / "x.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=expected):
        reader(p)
