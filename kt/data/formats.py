"""Readers and writers between the public KT file formats and :class:`KTSequences`.

Three formats, each as published with its reference implementation:

* pyKT sequence CSV (Liu et al., NeurIPS 2022, ``pykt/preprocess``): one row per (windowed) student,
  columns ``fold,uid[,questions],concepts,responses[,timestamps][,usetimes][,selectmasks][,is_repeat]
  [,cidxs]``, each a quoted comma-separated list, padded with ``-1`` to the window length (200) in the
  ``*_sequences.csv`` files and unpadded in ``train_valid.csv``/``test.csv``. Ids are 0-based.
* DKVMN 3-line (Zhang et al., WWW 2017): per student ``length`` / question ids / responses; ids 1-based.
* AKT 4-line (Ghosh et al., KDD 2020): per student ``index,user_id`` / problem ids / skill ids /
  responses; ids 1-based.

Index mapping (model indices are 1..n, 0 is padding): 1-based ids are kept as they are (index == raw id,
``Vocab.identity``); pyKT's 0-based ids are shifted by +1 on read and -1 on write. Writers therefore
reproduce the original ids, and read -> write reproduces the original bytes (tested on the shared files).

Parsing is vectorised: a whole column is joined into one string and parsed by numpy in one call, and
per-row lengths come from comma counts, so the 27 MB pyKT file parses in about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kt.data.schema import DataError
from kt.data.sequences import KTSequences

PYKT_PAD = -1
# Per-position pyKT columns that have no KTSequences field; kept verbatim in SequenceFile.extras.
PYKT_SEQ_COLUMNS = ("questions", "concepts", "responses", "timestamps", "usetimes", "selectmasks", "is_repeat", "cidxs")


@dataclass
class SequenceFile:
    """A parsed KT file: the sequences plus what is needed to write the file back exactly.

    extras: per-position integer columns without a KTSequences field (pyKT ``cidxs``, ``is_repeat``,
      ``usetimes``, raw ``timestamps``), aligned with ``seqs`` rows (padding removed).
    user_columns: per-sequence values without a KTSequences field (AKT ``index``).
    columns: the pyKT column order of the source file. pad_to: pyKT window length when padded.
    """

    seqs: KTSequences
    fmt: str
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    user_columns: dict[str, np.ndarray] = field(default_factory=dict)
    columns: list[str] | None = None
    pad_to: int | None = None


# ----------------------------------------------------------------------------- parsing helpers
def _parse_int_lists(path: Path, values: list[str] | np.ndarray, first_row: int, row_step: int, what: str):
    """Parse many comma-separated integer lists at once -> (flat int64 array, per-list lengths).

    first_row/row_step turn a list position into the 1-based row/line number used in error messages.
    """
    values = [v if isinstance(v, str) else "" for v in values]
    # str.count is a plain C loop (pandas' .str.count goes through a regex)
    lengths = np.fromiter((v.count(",") + 1 if v else 0 for v in values), dtype=np.int64, count=len(values))
    joined = ",".join(v for v in values if v)
    try:
        flat = np.fromstring(joined, dtype=np.int64, sep=",") if joined else np.zeros(0, np.int64)
    except ValueError:  # numpy >= 2 raises on a token it cannot parse
        flat = None
    if flat is None or len(flat) != lengths.sum():
        # Locate the first bad token for a precise message (rare path, Python is fine here).
        for i, v in enumerate(values):
            for tok in (v.split(",") if v else []):
                try:
                    int(tok)
                except ValueError:
                    raise DataError(path, first_row + i * row_step, what, f"not an integer: {tok!r}") from None
        raise DataError(path, None, what, "could not parse integer lists")
    # numpy saturates what does not fit in int64 instead of failing
    huge = np.flatnonzero((flat == np.iinfo(np.int64).max) | (flat == np.iinfo(np.int64).min))
    if len(huge):
        i = int(np.searchsorted(_offsets(lengths), huge[0], "right")) - 1
        raise DataError(path, first_row + i * row_step, what, "integer too large")
    return flat, lengths


def _check_min(path: Path, flat: np.ndarray, lengths: np.ndarray, low: int, first_row: int, row_step: int,
               what: str) -> None:
    bad = np.flatnonzero(flat < low)
    if len(bad):
        i = int(np.searchsorted(_offsets(lengths), bad[0], "right")) - 1
        raise DataError(path, first_row + i * row_step, what, f"{int(flat[bad[0]])} is below {low}")


def _offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _format_rows(flat: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Inverse of _parse_int_lists: one comma-joined string per row (lookup table for small ints)."""
    if len(flat) == 0:
        return ["" for _ in range(len(offsets) - 1)]
    lo, hi = int(flat.min()), int(flat.max())
    if hi - lo < 5_000_000:
        lut = np.array([str(v) for v in range(lo, hi + 1)], dtype=object)
        tokens = lut[flat - lo].tolist()
    else:
        tokens = [str(v) for v in flat.tolist()]
    return [",".join(tokens[s:e]) for s, e in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]


def _read_lines(path: Path) -> list[str]:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raw = path.read_bytes()
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, line, "-", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    except OSError as exc:
        raise DataError(path, None, "-", f"cannot read file: {exc.strerror or exc}") from None
    if not text.strip():
        raise DataError(path, None, "-", "empty file")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.rstrip("\r").rstrip(",") for ln in lines]  # tolerate CRLF and trailing commas


# ----------------------------------------------------------------------------- pyKT
def read_pykt_file(path: str | Path, num_items: int | None = None, num_concepts: int | None = None) -> SequenceFile:
    """Read a pyKT CSV (sequence or plain). Ids shift +1; ``-1`` padding is removed.

    ``selectmasks`` -> ``eval_mask`` (1 = evaluated); ``fold`` -> ``folds``; ``timestamps`` (pyKT keeps the
    source unit, milliseconds for the ASSISTments/EdNet files) -> ``times`` in seconds (``// 1000``) and kept
    verbatim in ``extras`` for an exact write-back. Concept-only files use the concept as the item.
    """
    path = Path(path)
    _read_lines(path)  # encoding / empty checks with a precise message
    try:
        df = pd.read_csv(path, dtype=object, keep_default_na=False, engine="c")
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(path, None, "-", f"malformed pyKT CSV: {str(exc).splitlines()[0]}") from None
    for col in ("uid", "concepts", "responses"):
        if col not in df.columns:
            raise DataError(path, None, col, "missing required column")
    n_rows = len(df)
    if not n_rows:
        raise DataError(path, None, "-", "no data rows (header only)")
    parsed: dict[str, np.ndarray] = {}
    width = None
    for col in [c for c in df.columns if c in PYKT_SEQ_COLUMNS]:
        flat, lengths = _parse_int_lists(path, df[col].to_numpy(), first_row=1, row_step=1, what=col)
        if width is None:
            width = lengths
        elif not np.array_equal(width, lengths):
            bad = int(np.flatnonzero(width != lengths)[0])
            raise DataError(path, bad + 1, col, f"{lengths[bad]} values, but concepts has {width[bad]}")
        parsed[col] = flat
    assert width is not None
    if (width == 0).any():
        bad = int(np.flatnonzero(width == 0)[0])
        raise DataError(path, bad + 1, "concepts", "no values (an empty cell?)")
    for col in ("concepts", "questions"):
        if col in parsed:  # 0-based ids; -1 is padding
            _check_min(path, parsed[col], width, PYKT_PAD, 1, 1, col)
    real = parsed["responses"] != PYKT_PAD
    # Padding must be a suffix of each row, otherwise lengths would not describe the rows.
    full_offsets = _offsets(width)
    for col in ("concepts", "questions"):
        # -1 is padding: at a position with a response it would become id 0, the padding index
        hole = np.flatnonzero(real & (parsed[col] < 0)) if col in parsed else ()
        if len(hole):
            raise DataError(path, int(np.searchsorted(full_offsets, hole[0], "right")), col,
                            "-1 (padding) at a position that has a response")
    lengths = np.add.reduceat(real.astype(np.int64), full_offsets[:-1]) if len(real) else np.zeros(n_rows, np.int64)
    lengths[width == 0] = 0
    padded = bool((~real).any())
    if padded:
        pos = np.arange(len(real)) - np.repeat(full_offsets[:-1], width)
        if not np.array_equal(real, pos < np.repeat(lengths, width)):
            bad = int(np.searchsorted(full_offsets, np.flatnonzero(real != (pos < np.repeat(lengths, width)))[0], "right"))
            raise DataError(path, bad, "responses", "padding (-1) inside a sequence")
    offsets = _offsets(lengths)
    concepts = parsed["concepts"][real] + 1
    items = parsed["questions"][real] + 1 if "questions" in parsed else concepts
    responses = parsed["responses"][real]
    if len(responses) and (responses.min() < 0 or responses.max() > 1):
        bad = int(np.flatnonzero((parsed["responses"] > 1) | (parsed["responses"] < -1))[0])
        row = int(np.searchsorted(full_offsets, bad, "right"))
        raise DataError(path, row, "responses", f"response {parsed['responses'][bad]} not in {{0, 1}}")
    extras = {c: parsed[c][real] for c in parsed if c not in ("questions", "concepts", "responses", "selectmasks")}
    times = extras["timestamps"] // 1000 if "timestamps" in extras else None
    folds = None
    if "fold" in df.columns:
        fold_num = pd.to_numeric(df["fold"], errors="coerce")
        if fold_num.isna().any():
            raise DataError(path, int(np.flatnonzero(fold_num.isna().to_numpy())[0]) + 1, "fold", "not an integer")
        folds = fold_num.to_numpy(np.int64)
    seqs = KTSequences(
        offsets=offsets,
        items=items.astype(np.int64),
        concepts=concepts.astype(np.int64),
        responses=responses.astype(np.int8),
        user_ids=df["uid"].to_numpy(dtype=object),
        num_items=int(num_items if num_items is not None else items.max(initial=0)),
        num_concepts=int(num_concepts if num_concepts is not None else concepts.max(initial=0)),
        times=times,
        eval_mask=(parsed["selectmasks"][real] == 1) if "selectmasks" in parsed else None,
        folds=folds,
        has_item_ids="questions" in parsed,
    )
    return SequenceFile(
        seqs=seqs,
        fmt="pykt",
        extras=extras,
        columns=list(df.columns),
        pad_to=int(width.max()) if padded else None,
    )


def write_pykt_file(
    path: str | Path,
    seqs: KTSequences,
    *,
    extras: dict[str, np.ndarray] | None = None,
    columns: list[str] | None = None,
    pad_to: int | None = None,
    **_: object,
) -> None:
    """Write pyKT CSV: ids shift -1, rows padded with -1 to ``pad_to`` (None: no padding).

    Without ``columns`` the column set follows the data: ``questions`` only when ``has_item_ids``,
    ``timestamps`` when times exist, ``selectmasks`` when an eval mask exists.
    """
    extras = dict(extras or {})
    if "timestamps" not in extras and seqs.times is not None:
        extras["timestamps"] = seqs.times * 1000
    if columns is None:
        columns = ["fold", "uid"] + (["questions"] if seqs.has_item_ids else []) + ["concepts", "responses"]
        columns += [c for c in ("timestamps", "usetimes") if c in extras]
        columns += ["selectmasks"] if seqs.eval_mask is not None else []
        columns += [c for c in ("is_repeat", "cidxs") if c in extras]
    per_position = {
        "questions": seqs.items - 1,
        "concepts": seqs.concepts - 1,
        "responses": seqs.responses.astype(np.int64),
        **{k: np.asarray(v, np.int64) for k, v in extras.items()},
    }
    if seqs.eval_mask is not None:
        per_position["selectmasks"] = np.where(seqs.eval_mask, 1, PYKT_PAD)
    lengths = seqs.lengths
    if pad_to is not None:
        if len(lengths) and lengths.max() > pad_to:
            raise ValueError(f"sequence of length {lengths.max()} longer than pad_to={pad_to}")
        row_len = np.full(len(lengths), pad_to, np.int64)
        out_offsets = _offsets(row_len)
        dest = (np.arange(seqs.num_interactions) - np.repeat(seqs.offsets[:-1], lengths)) + np.repeat(
            out_offsets[:-1], lengths
        )
    else:
        out_offsets, dest = seqs.offsets, None
    cells: dict[str, list[str]] = {}
    for col in columns:
        if col == "fold":
            folds = seqs.folds if seqs.folds is not None else np.zeros(len(seqs), np.int64)
            cells[col] = [str(int(f)) for f in folds]
        elif col == "uid":
            cells[col] = [str(u) for u in seqs.user_ids]
        elif col in per_position:
            values = per_position[col]
            if dest is not None:
                full = np.full(int(out_offsets[-1]), PYKT_PAD, np.int64)
                full[dest] = values
                values = full
            cells[col] = [f'"{s}"' if "," in s else s for s in _format_rows(values, out_offsets)]
        else:
            raise ValueError(f"no data for pyKT column {col!r}")
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(",".join(columns) + "\n")
        for row in zip(*(cells[c] for c in columns), strict=True):
            fh.write(",".join(row) + "\n")


# ----------------------------------------------------------------------------- DKVMN / AKT
def read_dkvmn_file(
    path: str | Path,
    num_items: int | None = None,
    num_concepts: int | None = None,
    item_to_concept: np.ndarray | None = None,
) -> SequenceFile:
    """Read DKVMN 3-line blocks. ``item_to_concept[q]`` gives the concept index of question q (e.g. from
    STATICS' Qmatrix.csv); without it the question is its own concept. User ids are the block positions."""
    path = Path(path)
    lines = _read_lines(path)
    if len(lines) % 3:
        raise DataError(path, len(lines), "-", f"truncated file: {len(lines)} lines is not a multiple of 3")
    lens_flat, per_line = _parse_int_lists(path, lines[0::3], 1, 3, "length")
    if (per_line != 1).any():
        raise DataError(path, 3 * int(np.flatnonzero(per_line != 1)[0]) + 1, "length", "expected one integer")
    items, lengths = _parse_int_lists(path, lines[1::3], 2, 3, "question ids")
    _check_min(path, items, lengths, 1, 2, 3, "question ids")  # 1-based: 0 is DKVMN's padding
    responses, r_lengths = _parse_int_lists(path, lines[2::3], 3, 3, "responses")
    _check_block_lengths(path, lengths, r_lengths, 3, 3, "responses")
    _check_block_lengths(path, lens_flat, lengths, 1, 3, "length")
    concepts = item_to_concept[items] if item_to_concept is not None else items
    seqs = KTSequences(
        offsets=_offsets(lengths),
        items=items,
        concepts=np.asarray(concepts, np.int64),
        responses=_check_responses(path, responses, lengths, 3, 3),
        user_ids=np.array([str(i) for i in range(len(lengths))], dtype=object),
        num_items=int(num_items if num_items is not None else items.max(initial=0)),
        num_concepts=int(num_concepts if num_concepts is not None else np.max(concepts, initial=0)),
        has_item_ids=True,
    )
    return SequenceFile(seqs=seqs, fmt="dkvmn")


def write_dkvmn_file(path: str | Path, seqs: KTSequences, **_: object) -> None:
    """Write DKVMN 3-line blocks: length / item ids / responses (concepts are not part of the format)."""
    offsets = seqs.offsets
    items = _format_rows(seqs.items, offsets)
    resp = _format_rows(seqs.responses.astype(np.int64), offsets)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for n, q, r in zip(seqs.lengths.tolist(), items, resp, strict=True):
            fh.write(f"{n}\n{q}\n{r}\n")


def read_akt_file(path: str | Path, num_items: int | None = None, num_concepts: int | None = None) -> SequenceFile:
    """Read AKT 4-line blocks: ``index,user_id`` / problem ids / skill ids / responses."""
    path = Path(path)
    lines = _read_lines(path)
    if len(lines) % 4:
        raise DataError(path, len(lines), "-", f"truncated file: {len(lines)} lines is not a multiple of 4")
    headers = [h.split(",") for h in lines[0::4]]
    for i, h in enumerate(headers):
        if len(h) != 2:
            raise DataError(path, 4 * i + 1, "index,user_id", f"expected 'index,user_id', got {lines[4 * i]!r}")
    items, lengths = _parse_int_lists(path, lines[1::4], 2, 4, "problem ids")
    concepts, c_lengths = _parse_int_lists(path, lines[2::4], 3, 4, "skill ids")
    responses, r_lengths = _parse_int_lists(path, lines[3::4], 4, 4, "responses")
    _check_block_lengths(path, lengths, c_lengths, 3, 4, "skill ids")
    _check_block_lengths(path, lengths, r_lengths, 4, 4, "responses")
    seqs = KTSequences(
        offsets=_offsets(lengths),
        items=items,
        concepts=concepts,
        responses=_check_responses(path, responses, lengths, 4, 4),
        user_ids=np.array([h[1] for h in headers], dtype=object),
        num_items=int(num_items if num_items is not None else items.max(initial=0)),
        num_concepts=int(num_concepts if num_concepts is not None else concepts.max(initial=0)),
        has_item_ids=True,
    )
    return SequenceFile(seqs=seqs, fmt="akt", user_columns={"index": np.array([h[0] for h in headers], dtype=object)})


def write_akt_file(path: str | Path, seqs: KTSequences, *, user_columns: dict | None = None, **_: object) -> None:
    """Write AKT 4-line blocks; ``index`` comes from ``user_columns`` or is the 1-based position."""
    index = (user_columns or {}).get("index")
    if index is None:
        index = np.arange(1, len(seqs) + 1)
    offsets = seqs.offsets
    items, concepts = _format_rows(seqs.items, offsets), _format_rows(seqs.concepts, offsets)
    resp = _format_rows(seqs.responses.astype(np.int64), offsets)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        for idx, uid, q, c, r in zip(index, seqs.user_ids, items, concepts, resp, strict=True):
            fh.write(f"{idx},{uid}\n{q}\n{c}\n{r}\n")


def _check_block_lengths(path, expected, got, line_in_block, block, what) -> None:
    if not np.array_equal(expected, got):
        i = int(np.flatnonzero(np.asarray(expected) != np.asarray(got))[0])
        raise DataError(path, block * i + line_in_block, what, f"{got[i]} values, expected {expected[i]}")


def _check_responses(path, responses, lengths, line_in_block, block) -> np.ndarray:
    bad = (responses != 0) & (responses != 1)
    if bad.any():
        i = int(np.searchsorted(_offsets(lengths), np.flatnonzero(bad)[0], "right")) - 1
        raise DataError(path, block * i + line_in_block, "responses", "responses must be 0 or 1")
    return responses.astype(np.int8)


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class KTFormat:
    name: str
    read: Callable[..., SequenceFile]
    write: Callable[..., None]


FORMATS: dict[str, KTFormat] = {
    "pykt": KTFormat("pykt", read_pykt_file, write_pykt_file),
    "dkvmn": KTFormat("dkvmn", read_dkvmn_file, write_dkvmn_file),
    "akt": KTFormat("akt", read_akt_file, write_akt_file),
}


def read_sequences(path: str | Path, fmt: str, **kwargs) -> KTSequences:
    """Read a KT file of format ``fmt`` (pykt, dkvmn, akt) into KTSequences."""
    return get_format(fmt).read(path, **kwargs).seqs


def write_file(path: str | Path, parsed: SequenceFile | KTSequences, fmt: str) -> None:
    """Write sequences (or a parsed file, keeping its extras when the format is the same) as ``fmt``."""
    if isinstance(parsed, KTSequences):
        parsed = SequenceFile(seqs=parsed, fmt="")
    writer = get_format(fmt).write
    if fmt == parsed.fmt:
        writer(path, parsed.seqs, extras=parsed.extras, columns=parsed.columns, pad_to=parsed.pad_to,
               user_columns=parsed.user_columns)
    else:
        writer(path, parsed.seqs)


def get_format(fmt: str) -> KTFormat:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown KT format {fmt!r}; known: {', '.join(sorted(FORMATS))}") from None
