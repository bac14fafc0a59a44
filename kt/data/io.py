"""Validated loading of contract tables (CSV or Parquet) with quarantine of rejected rows.

Two kinds of problems:

* file-level (empty, truncated, undecodable, unreadable Parquet, missing required, unknown or
  repeated column, cyclic prerequisites): :class:`DataError` with a one-line ``path:row: field:
  reason`` message;
* row-level (wrong type, out of range, unknown foreign id, duplicate key, impossible timestamp, missing
  required value, malformed CSV row): the row is rejected, written to
  ``<quarantine_dir>/<table>.rejected.csv`` with its original values plus ``_file``, ``_row``,
  ``_field``, ``_code``, ``_reason``, and counted in the summary. Nothing is dropped silently.

``_row`` is the 1-based *data* row of its file, header excluded (CSV file line = ``_row + 1``; for
Parquet the 1-based row in the file). Each rejected row carries its first problem, checked in the
order: missing, type, constraint, foreign key, duplicate key (last: the first *valid* copy of a key wins).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kt.data.schema import (
    EVENTS,
    FOLDERS,
    FUTURE_TOLERANCE,
    ID_FORBIDDEN,
    ID_RULE,
    LIST_SEPARATOR,
    LOAD_ORDER,
    MAX_ID_LENGTH,
    MIN_TIMESTAMP,
    Column,
    DataError,
    USERS,
    TableSchema,
    primary_topics,
)

__all__ = ["DataError", "LoadResult", "World", "load_table", "load_world", "validate_events", "find_table_path"]

META_COLUMNS = ["_file", "_row", "_field", "_code", "_reason"]


# exact integers in a float64 (and what an int64 column can take without wrapping)
MAX_EXACT_INT = 2**53
TYPE_NAMES = {
    "str": "not a string",
    "int": "not an integer (a whole number, at most 2**53 in size)",
    "float": "not a finite number",
    "bool": "not true/false",
    "timestamp": "not a timestamp",
}


@dataclass
class LoadResult:
    """The outcome of loading one table: typed clean rows, rejected rows, counts per problem code."""

    table: str
    files: list[str]
    clean: pd.DataFrame
    rejected: pd.DataFrame
    summary: dict[str, int]
    n_read: int
    quarantine_path: Path | None = None
    unchecked_foreign_keys: list[str] = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return len(self.rejected)

    def summary_line(self) -> str:
        where = self.files[0] if len(self.files) == 1 else f"{Path(self.files[0]).parent} ({len(self.files)} files)"
        line = f"{self.table}: {where}: {self.n_read} rows, {len(self.clean)} kept, {self.n_rejected} rejected"
        if self.summary:
            line += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.summary.items())) + ")"
        if self.quarantine_path is not None:
            line += f" -> {self.quarantine_path}"
        if self.unchecked_foreign_keys:
            line += f"; foreign keys not checked: {', '.join(self.unchecked_foreign_keys)}"
        return line


# ----------------------------------------------------------------------------- raw reading
def _read_csv_raw(path: Path, schema: TableSchema) -> tuple[pd.DataFrame, list[tuple[int, str, str, dict]]]:
    """CSV -> all-string DataFrame with _file/_row, plus malformed rows (row, code, reason, values)."""
    raw = path.read_bytes()
    bom = raw.startswith(codecs.BOM_UTF8)  # spreadsheet exports often start with one
    raw = raw[len(codecs.BOM_UTF8):] if bom else raw
    if not raw.strip():
        raise DataError(path, None, "-", "empty file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = raw[: exc.start].count(b"\n") + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        header = raw[: raw.find(b"\n")].decode("utf-8", "replace").split(",")
        col_idx = raw[line_start : exc.start].count(b",")
        fld = header[col_idx] if line_no > 1 and col_idx < len(header) else "-"
        row = line_no - 1 if line_no > 1 else None
        raise DataError(path, row, fld, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    try:
        first = next(csv.reader(io.StringIO(text[: text.find("\n") + 1 or len(text)], newline="")))
    except (csv.Error, StopIteration):
        first = []
    # pyarrow reads a blank line as a row of nulls (and would report it as missing values): trailing
    # ones are cut; a file with blank lines between rows goes to the exact parser, which skips them
    # while keeping every other row's number
    body = raw.rstrip(b"\r\n")
    blank_line = b"\n\n" in body or b"\n\r\n" in body or b"\r\r" in body
    fast = _read_csv_fast(body + b"\n", first) if first and not blank_line else None
    if fast is not None:
        return fast, []
    # Slow, exact path: Python's csv module reports each malformed row precisely.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(path, max(reader.line_num - 1, 1), "-", f"truncated or malformed CSV ({exc})") from None
    header = [h.strip() for h in header]
    if not rows:
        raise DataError(path, None, "-", "empty file (header only, no data rows)")
    n = len(header)
    last = rows[-1]
    if len(last) < n and not text.endswith(("\n", "\r")):
        raise DataError(path, len(rows), header[len(last) - 1] if last else "-",
                        f"truncated file: last row has {len(last)} of {n} fields and no final newline")
    good, malformed = [], []
    for i, r in enumerate(rows, start=1):
        if len(r) == n:
            good.append([*r, i])
        elif r == []:  # blank line
            continue
        else:
            values = dict(zip(header, r, strict=False))
            if len(r) > n:  # kept, not cut: the quarantine file must hold the whole row
                values["_extra"] = ",".join(r[n:])
            malformed.append((i, "malformed_row", f"{len(r)} fields, header has {n}", values))
    if not good and not malformed:
        raise DataError(path, None, "-", "empty file (header only, no data rows)")
    df = pd.DataFrame(good, columns=[*header, "_row"], dtype=object)
    df["_row"] = df["_row"].astype(np.int64)
    # Empty CSV cells are nulls.
    for c in header:
        df[c] = df[c].where(df[c] != "", None)
    return df, malformed


def _read_csv_fast(source: bytes, header: list[str]) -> pd.DataFrame | None:
    """pyarrow's CSV reader for well-formed files; None when any row is structurally off (wrong field
    count, blank line, unterminated quote), and the caller re-reads with the exact, slower parser."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(
            pa.BufferReader(source),
            read_options=pacsv.ReadOptions(encoding="utf8"),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header}, strings_can_be_null=True,
                quoted_strings_can_be_null=True, null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, ValueError):
        return None
    if table.num_rows == 0 or table.column_names != header:
        return None
    df = table.to_pandas()
    df.columns = [str(c).strip() for c in df.columns]
    df["_row"] = np.arange(1, len(df) + 1, dtype=np.int64)
    return df


def _read_parquet_raw(path: Path) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise DataError(path, None, "-", "empty file")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt/truncated files
        raise DataError(path, None, "-", f"cannot read Parquet (truncated or corrupt?): {str(exc).splitlines()[0]}") from None
    # a file with a schema and no rows is a valid part (a chunk of users without events, a world
    # where nobody made a folder): its columns are still checked against the contract
    df = table.to_pandas()
    df["_row"] = np.arange(1, len(df) + 1, dtype=np.int64)
    return df


def table_files(path: Path) -> list[Path]:
    """The files of one table: ``path`` itself, or the .parquet/.csv parts of a folder (sorted)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".parquet", ".csv") and not p.name.startswith("."))
        if not files:
            raise DataError(path, None, "-", "empty directory: no .parquet or .csv part files")
        return files
    if not path.exists():
        raise DataError(path, None, "-", "file not found")
    return [path]


# ----------------------------------------------------------------------------- validation core
class _Problems:
    """First problem per row position (index into the frame being validated).

    ``values`` holds the column currently checked, so reason functions see the offending value.
    """

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.field = np.full(n, None, dtype=object)
        self.code = np.full(n, None, dtype=object)
        self.reason = np.full(n, None, dtype=object)
        self.values: pd.Series = pd.Series([None] * n, dtype=object)

    def add(self, mask: np.ndarray, fld: str, code: str, reason) -> None:
        """Record a problem for rows in ``mask`` that have none yet. ``reason`` is a string or a function
        of one row's value (called only for those rows, so clean data costs no message formatting)."""
        new = np.asarray(mask, bool) & ~self.bad
        if not new.any():
            return
        self.bad |= new
        self.field[new] = fld
        self.code[new] = code
        if isinstance(reason, str):
            self.reason[new] = reason
        else:  # materialise only the offending values (object conversion of a whole column is slow)
            self.reason[new] = [reason(v) for v in self.values.iloc[np.flatnonzero(new)].astype(object).tolist()]


def _coerce(values: pd.Series, col: Column, now: pd.Timestamp) -> tuple[pd.Series, np.ndarray, np.ndarray, str]:
    """Convert one column. Returns (typed series, type-error mask, constraint-error mask, constraint code)."""
    present = values.notna().to_numpy()
    if col.dtype == "str" and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        arrow = values.astype(pd.StringDtype("pyarrow"))  # vectorised string ops
        blank = arrow.str.strip().str.len().eq(0).fillna(False).to_numpy(bool)
        typed = values.astype(object).where(values.notna() & ~blank, None)
        bad_type = np.zeros(len(values), bool)
    elif col.dtype == "str":
        # integers are ids too (JSON, Parquet); booleans are not, though Python counts them as ints
        typed = values.map(lambda v: v if isinstance(v, str) else (
            str(v) if isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) else None), na_action="ignore")
        bad_type = present & typed.isna().to_numpy()
        typed = typed.where(~bad_type, None).astype(object)
        typed = typed.where(typed.map(lambda v: v is None or v.strip() != "", na_action="ignore").fillna(True), None)
    elif col.dtype in ("float", "int"):
        if pd.api.types.is_bool_dtype(values):  # true/false is not a number, whatever Python says
            num = pd.Series(np.nan, index=values.index)
        elif pd.api.types.is_numeric_dtype(values):
            num = values.astype(float)
        elif pd.api.types.infer_dtype(values, skipna=True) in ("boolean", "mixed", "mixed-integer"):
            is_bool = values.map(lambda v: isinstance(v, bool | np.bool_), na_action="ignore").fillna(False).to_numpy(bool)
            num = pd.to_numeric(values.where(~is_bool, None), errors="coerce")
        else:  # strings (CSV) or numbers in an object column: no booleans to look for
            num = pd.to_numeric(values, errors="coerce")
        num = num.astype(float)
        bad_type = present & (num.isna() | ~np.isfinite(num.fillna(0))).to_numpy()
        if col.dtype == "int":
            # beyond 2**53 a float no longer holds every integer, and int64 would wrap: not a count
            bad_type |= present & ~bad_type & ((num.fillna(0) % 1 != 0) | (num.abs() > MAX_EXACT_INT)).to_numpy()
        typed = num.where(~bad_type)
    elif col.dtype == "bool":
        mapping = {"true": True, "false": False, "1": True, "0": False, True: True, False: False}
        typed = values.map(lambda v: mapping.get(v.lower() if isinstance(v, str) else v), na_action="ignore")
        bad_type = present & typed.isna().to_numpy()
    else:  # timestamp
        if pd.api.types.is_datetime64_any_dtype(values):
            typed = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
            typed = typed.dt.tz_convert("UTC")
        else:
            typed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        bad_type = present & typed.isna().to_numpy()
        out = present & ~bad_type & ((typed < MIN_TIMESTAMP) | (typed > now + FUTURE_TOLERANCE)).to_numpy()
        return typed, bad_type, out, "bad_timestamp"
    bad_con = np.zeros(len(values), bool)
    ok = present & ~bad_type
    if col.is_id:
        bad_con |= ok & _bad_ids(typed, col)
    if col.min is not None:
        bad_con |= ok & (typed < col.min).fillna(False).to_numpy(bool)
    if col.max is not None:
        bad_con |= ok & (typed > col.max).fillna(False).to_numpy(bool)
    if col.choices is not None:
        if col.is_list:
            bad_con |= ok & _flag(typed, lambda v: any(x not in col.choices for x in _split(v)))
        else:
            bad_con |= ok & ~typed.isin(col.choices).to_numpy(bool)
    if col.pattern is not None:
        rx = re.compile(col.pattern)
        if col.is_list:
            bad_con |= ok & _flag(typed, lambda v: any(not rx.fullmatch(x) for x in _split(v)))
        else:
            bad_con |= ok & ~typed.astype(object).str.fullmatch(col.pattern).fillna(False).to_numpy(bool)
    return typed, bad_type, bad_con, "out_of_range"


def _bad_ids(typed: pd.Series, col: Column) -> np.ndarray:
    """Values (any element, for a list) that break the id rule; vectorised in Arrow for plain ids."""
    if col.is_list:
        forbidden = re.compile(ID_FORBIDDEN)
        return _flag(typed, lambda v: any(len(x) > MAX_ID_LENGTH or forbidden.search(x) for x in _split(v)))
    arrow = typed.astype(pd.StringDtype("pyarrow"))
    bad = arrow.str.len().gt(MAX_ID_LENGTH) | arrow.str.contains(ID_FORBIDDEN, regex=True)
    return bad.fillna(False).to_numpy(bool)


def _flag(values: pd.Series, test) -> np.ndarray:
    """Boolean array: ``test(v)`` for present values, False for nulls."""
    return np.fromiter((False if v is None or v is pd.NA or v != v else bool(test(v)) for v in values),
                       dtype=bool, count=len(values))


def _show(v: object) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _split(v: str) -> list[str]:
    return [x.strip() for x in v.split(LIST_SEPARATOR)]


def _constraint_reason(v: object, col: Column) -> str:
    if col.dtype == "timestamp":
        return f"impossible timestamp {_show(v)} (before {MIN_TIMESTAMP.date()} or in the future)"
    return f"{_show(v)} {_constraint_text(col)}"


def _constraint_text(col: Column) -> str:
    if col.is_id:
        return f"not an id: {ID_RULE}"
    if col.choices is not None:
        return f"not one of {list(col.choices)}"
    if col.pattern is not None:
        return f"does not match {col.pattern}"
    lo = "-inf" if col.min is None else col.min
    hi = "inf" if col.max is None else col.max
    return f"outside [{lo}, {hi}]"


def _validate_frame(
    df: pd.DataFrame,
    schema: TableSchema,
    known_ids: dict[str, set] | None,
    now: pd.Timestamp,
) -> tuple[pd.DataFrame, _Problems, list[str]]:
    """Type and check ``df`` (columns already present). Returns (typed frame, problems, unchecked FKs)."""
    probs = _Problems(len(df))
    typed = pd.DataFrame(index=df.index)
    for col in schema.columns:
        values = df[col.name] if col.name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)
        t, bad_type, bad_con, con_code = _coerce(values, col, now)
        if not col.nullable:
            probs.add(t.isna().to_numpy() & ~bad_type, col.name, "missing", "missing required value")
        probs.values = values
        probs.add(bad_type, col.name, "bad_timestamp" if col.dtype == "timestamp" else "bad_type",
                  lambda v, c=col: f"{TYPE_NAMES[c.dtype]}: {_show(v)}")
        probs.add(bad_con, col.name, con_code, lambda v, c=col: _constraint_reason(v, c))
        typed[col.name] = t
    unchecked = []
    for fk in schema.foreign_keys:
        if fk.table == schema.name:  # self-reference: ids defined by this very file
            target = set(typed.loc[~probs.bad, fk.ref_column].dropna()) | set((known_ids or {}).get(fk.target, ()))
        elif known_ids is not None and fk.target in known_ids:
            target = known_ids[fk.target]
        else:
            unchecked.append(f"{schema.name}.{fk.column}->{fk.target}")
            continue
        col = schema.column(fk.column)
        vals = typed[fk.column]
        if col.is_list:
            missing = vals.map(lambda v, t=target: [x for x in _split(v) if x not in t], na_action="ignore")
            bad = _flag(missing, bool)
            probs.values = missing
            probs.add(bad, fk.column, "unknown_id", lambda m, t=fk.target: f"unknown {t}: {', '.join(m)}")
        else:
            bad = vals.notna().to_numpy() & ~vals.isin(target).to_numpy()
            probs.values = vals
            probs.add(bad, fk.column, "unknown_id", lambda v, t=fk.target: f"unknown {t} {_show(v)}")
    # Duplicate keys, last: within the frame the first *valid* occurrence wins (a copy rejected for
    # any other reason must not make a valid repeat a duplicate), and against already-known ids.
    if schema.key:
        key_cols = list(schema.key)
        cand = ~probs.bad
        keys = typed[key_cols].astype(str).agg("\x1f".join, axis=1) if len(key_cols) > 1 else typed[key_cols[0]]
        dup = cand & keys.where(cand).duplicated(keep="first").to_numpy() & keys.notna().to_numpy()
        probs.add(dup, "/".join(key_cols), "duplicate_key", f"duplicate {'/'.join(key_cols)} in this file")
        if len(key_cols) == 1 and known_ids and f"{schema.name}.{key_cols[0]}" in known_ids:
            seen = known_ids[f"{schema.name}.{key_cols[0]}"]
            probs.add(keys.isin(seen).to_numpy(), key_cols[0], "duplicate_key", f"{key_cols[0]} already loaded")
    return typed, probs, unchecked


def _finish_types(clean: pd.DataFrame, schema: TableSchema) -> pd.DataFrame:
    for col in schema.columns:
        if col.dtype == "int":
            clean[col.name] = clean[col.name].astype("Int64" if col.nullable else np.int64)
        elif col.dtype == "float":
            clean[col.name] = clean[col.name].astype(np.float64)
        elif col.dtype == "bool" and not col.nullable:
            clean[col.name] = clean[col.name].astype(bool)
        elif col.dtype == "str":
            clean[col.name] = clean[col.name].astype(object)
    return clean.reset_index(drop=True)


def _check_header(path: Path, columns: list[str], schema: TableSchema) -> None:
    """A column named twice, or one the contract does not know (a misspelt ``folderid`` would
    silently lose its values), makes the whole file unreadable: which copy or which field was
    meant is the author's call, not ours."""
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise DataError(path, None, c, "column named twice in the header")
        seen.add(c)
    unknown = [c for c in columns if c not in schema.column_names]
    if unknown:
        raise DataError(path, None, unknown[0], f"unknown column(s) {', '.join(map(repr, unknown))}; the {schema.name} "
                                                 f"table has {', '.join(schema.column_names)}")


# ----------------------------------------------------------------------------- public API
@dataclass
class RawBatch:
    """Rows of one file of a table, as read (CSV as text; not yet validated): ``frame`` with a
    ``_row`` column (the row's number in ``file``, as the quarantine reports it), and the rows that
    could not be parsed at all (``{column values..., "_row", "_code", "_reason"}``)."""

    file: Path
    frame: pd.DataFrame
    malformed: list[dict]


def iter_table_batches(path: str | Path, schema: TableSchema, batch_rows: int = 262_144,
                       columns: list[str] | None = None) -> Iterator[RawBatch]:
    """Stream a table (a file or a folder of parts) in batches, each file's header checked as
    :func:`load_table` checks it, ``batch_rows`` rows at a time. Parquet parts and well-formed CSV
    files stream; a CSV file with a blank line or a row that cannot be parsed is read (from there on)
    by the exact parser of :func:`load_table`, whole, which reports each malformed row rather than
    failing. ``columns``: only these (those the file has)."""
    import pyarrow.parquet as pq

    for f in table_files(Path(path)):
        if f.suffix == ".parquet":
            if f.stat().st_size == 0:
                raise DataError(f, None, "-", "empty file")
            try:
                pf = pq.ParquetFile(f)
            except Exception as exc:  # several pyarrow types for corrupt/truncated files
                raise DataError(f, None, "-", f"cannot read Parquet (truncated or corrupt?): {str(exc).splitlines()[0]}") from None
            # a DataFrame written with its index keeps it as a column (load_table's to_pandas() turns it
            # back into the index): not one of the table's columns
            meta = pf.schema_arrow.pandas_metadata or {}
            index_cols = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
            names = [c for c in pf.schema_arrow.names if c not in index_cols]
            _check_raw_columns(f, names, schema)
            cols = [c for c in (columns or names) if c in names]
            first = 1
            for rb in pf.iter_batches(batch_size=batch_rows, columns=cols):
                frame = rb.to_pandas()
                frame["_row"] = np.arange(first, first + len(frame), dtype=np.int64)
                first += len(frame)
                yield RawBatch(f, frame, [])
        elif f.suffix == ".csv":
            yield from _iter_csv_batches(f, schema, batch_rows, columns)
        else:
            raise DataError(f, None, "-", "unsupported file type (expected .csv or .parquet)")


def _iter_csv_batches(f: Path, schema: TableSchema, batch_rows: int, columns: list[str] | None) -> Iterator[RawBatch]:
    """One CSV file in batches. Well-formed files stream through pyarrow's reader, a block at a
    time; a file with a blank line, or one whose stream hits a row pyarrow cannot parse, goes to
    the exact parser of :func:`load_table` (the whole file in memory), which names each malformed
    row; rows already streamed are not given twice."""
    streamed = 0
    if not _has_blank_line(f):
        try:
            for frame in _stream_csv(f, schema, batch_rows, columns):
                streamed += len(frame)
                yield RawBatch(f, frame, [])
            return
        except _NotStreamable:
            pass
    raw, malformed = _read_csv_raw(f, schema)
    _check_raw_columns(f, [c for c in raw.columns if c != "_row"], schema)
    keep = [c for c in (columns or list(raw.columns)) if c in raw.columns and c != "_row"] + ["_row"]
    raw = raw.loc[raw["_row"] > streamed, keep].reset_index(drop=True)
    bad = [{**values, "_row": row, "_code": code, "_reason": reason}
           for row, code, reason, values in malformed if row > streamed]
    if not len(raw):
        yield RawBatch(f, raw, bad)
    for start in range(0, len(raw), batch_rows):
        yield RawBatch(f, raw.iloc[start : start + batch_rows].reset_index(drop=True), bad if start == 0 else [])


CSV_BLOCK_BYTES = 1 << 22  # what pyarrow parses at a time when a CSV file streams


class _NotStreamable(Exception):
    """pyarrow's streaming reader met something only the exact parser reports properly."""


def _has_blank_line(f: Path, chunk: int = 1 << 24) -> bool:
    """A blank line anywhere (trailing ones included), read in bounded chunks: pyarrow would read it
    as a row of nulls, the exact parser skips it and keeps every other row's number."""
    tail = b""
    with f.open("rb") as fh:
        while block := fh.read(chunk):
            data = tail + block
            if b"\n\n" in data or b"\n\r\n" in data or b"\r\r" in data:
                return True
            tail = data[-2:]  # a blank line split across two chunks
    return False


def _stream_csv(f: Path, schema: TableSchema, batch_rows: int, columns: list[str] | None) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if f.stat().st_size == 0:
        raise _NotStreamable  # the exact parser names an empty file
    try:
        reader = pacsv.open_csv(
            f,
            read_options=pacsv.ReadOptions(encoding="utf8", block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=True,
                                                 null_values=[""], auto_dict_encode=False,
                                                 column_types={c: pa.string() for c in schema.column_names}),
        )
    except (pa.ArrowInvalid, ValueError, UnicodeDecodeError) as exc:
        raise _NotStreamable from exc
    header = [str(c).strip() for c in reader.schema.names]
    _check_raw_columns(f, header, schema)
    if any(not pa.types.is_string(t) for t in reader.schema.types):
        raise _NotStreamable  # a name with spaces around it escaped the text types: read it exactly
    keep = [i for i, c in enumerate(header) if columns is None or c in columns]
    first, pending, n_pending = 1, [], 0
    try:
        for rb in reader:
            pending.append(rb)
            n_pending += rb.num_rows
            if n_pending >= batch_rows:
                yield _csv_frame(pending, header, keep, first)
                first, pending, n_pending = first + n_pending, [], 0
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise _NotStreamable from exc
    if first == 1 and not n_pending:
        raise _NotStreamable  # header only: the exact parser says so
    if n_pending:
        yield _csv_frame(pending, header, keep, first)


def _csv_frame(batches: list, header: list[str], keep: list[int], first: int) -> pd.DataFrame:
    frame = pd.DataFrame({header[i]: pd.concat([b.column(i).to_pandas() for b in batches], ignore_index=True)
                          if batches else pd.Series(dtype=object) for i in keep})
    frame["_row"] = np.arange(first, first + len(frame), dtype=np.int64)
    return frame


def _check_raw_columns(path: Path, columns: list[str], schema: TableSchema) -> None:
    _check_header(path, columns, schema)
    missing = [c for c in schema.required_columns if c not in columns]
    if missing:
        raise DataError(path, None, missing[0], f"missing required column(s): {', '.join(missing)}")


def load_table(
    path: str | Path,
    schema: TableSchema,
    *,
    known_ids: dict[str, set] | None = None,
    quarantine_dir: str | Path | None = None,
    now: pd.Timestamp | None = None,
) -> LoadResult:
    """Load and validate one table from a CSV or Parquet file (by extension) or a directory of parts.

    known_ids: ``{"table.column": set_of_ids}`` used for foreign keys and, for this table's own key
      (e.g. ``"events.event_id"``), as already-seen ids; targets absent from it are not checked and are
      listed in ``LoadResult.unchecked_foreign_keys``.
    quarantine_dir: where ``<table>.rejected.csv`` is written when rows are rejected (None: not written);
      a stale one is removed when the table loads clean.
    now: the reference for "in the future" (default: the current time).
    """
    path = Path(path)
    now = pd.Timestamp.now(tz="UTC") if now is None else now
    frames, malformed_frames = [], []
    files = table_files(path)
    for f in files:
        if f.suffix == ".parquet":
            raw, malformed = _read_parquet_raw(f), []
        elif f.suffix == ".csv":
            raw, malformed = _read_csv_raw(f, schema)
        else:
            raise DataError(f, None, "-", "unsupported file type (expected .csv or .parquet)")
        _check_raw_columns(f, [c for c in raw.columns if c != "_row"], schema)
        raw["_file"] = str(f)
        frames.append(raw)
        for row, code, reason, values in malformed:
            malformed_frames.append({**values, "_file": str(f), "_row": row, "_field": "-", "_code": code, "_reason": reason})
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    typed, probs, unchecked = _validate_frame(raw, schema, known_ids, now)
    bad = probs.bad
    clean = _finish_types(typed.loc[~bad].copy(), schema)
    orig_cols = [c for c in raw.columns if c not in ("_file", "_row")]
    rejected = raw.loc[bad, orig_cols].copy()
    rejected["_file"] = raw.loc[bad, "_file"].to_numpy()
    rejected["_row"] = raw.loc[bad, "_row"].to_numpy()
    rejected["_field"], rejected["_code"], rejected["_reason"] = probs.field[bad], probs.code[bad], probs.reason[bad]
    if malformed_frames:
        rejected = pd.concat([rejected, pd.DataFrame(malformed_frames)], ignore_index=True)
    rejected = rejected.sort_values(["_file", "_row"], kind="stable").reset_index(drop=True)
    summary = dict(Counter(rejected["_code"])) if len(rejected) else {}
    qpath = None
    if quarantine_dir is not None:
        target = Path(quarantine_dir) / f"{schema.name}.rejected.csv"
        if len(rejected):
            target.parent.mkdir(parents=True, exist_ok=True)
            rejected.to_csv(target, index=False)
            qpath = target
        elif target.exists():  # the quarantine file always describes the latest load of this table
            target.unlink()
    return LoadResult(
        table=schema.name,
        files=[str(f) for f in files],
        clean=clean,
        rejected=rejected,
        summary=summary,
        n_read=len(raw) + len(malformed_frames),
        quarantine_path=qpath,
        unchecked_foreign_keys=unchecked,
    )


def validate_events(
    events: pd.DataFrame | list[dict],
    known_content_ids: set | None,
    seen_event_ids: set | None,
    *,
    known_user_ids: set | None = None,
    known_folder_ids: set | None = None,
    now: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, list[dict]]:
    """Validate events given as a DataFrame or a list of dicts (e.g. an HTTP ingest batch).

    Returns (accepted typed DataFrame with an ``index`` column = position in the input, rejected list of
    ``{"index", "field", "code", "reason"}``; code ``duplicate_key``: a later copy of an event_id whose
    first valid copy was accepted). Ids in ``seen_event_ids`` are duplicates (idempotent ingest is the
    caller's decision: it may treat them as already stored). None for a set skips that check.
    """
    if isinstance(events, pd.DataFrame):  # typed columns (e.g. Parquet): nulls are already NaN/None
        df = events.reset_index(drop=True)
    else:  # JSON objects: one object column each, so a wrong type in one item stays that item's problem
        df = pd.DataFrame(list(events))
        df = df.astype(object).where(df.notna(), None) if len(df) else df
    known: dict[str, set] = {}
    for name, ids in (("items.content_id", known_content_ids), ("events.event_id", seen_event_ids),
                      ("users.user_id", known_user_ids), ("folders.folder_id", known_folder_ids)):
        if ids is not None:
            known[name] = ids
    if not len(df):
        return pd.DataFrame(columns=["index", *EVENTS.column_names]), []
    typed, probs, _ = _validate_frame(df, EVENTS, known, pd.Timestamp.now(tz="UTC") if now is None else now)
    bad = probs.bad
    accepted = _finish_types(typed.loc[~bad].copy(), EVENTS)
    accepted.insert(0, "index", np.flatnonzero(~bad))
    rejected = [
        {"index": int(i), "field": str(probs.field[i]), "code": str(probs.code[i]), "reason": str(probs.reason[i])}
        for i in np.flatnonzero(bad)
    ]
    return accepted, rejected


# ----------------------------------------------------------------------------- worlds
@dataclass
class World:
    """All tables of a world directory, validated. ``results`` holds each table's LoadResult."""

    topics: pd.DataFrame
    prerequisites: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    folders: pd.DataFrame
    folder_items: pd.DataFrame
    events: pd.DataFrame
    results: dict[str, LoadResult] = field(default_factory=dict)

    @property
    def n_rejected(self) -> int:
        return sum(r.n_rejected for r in self.results.values())

    def summary_lines(self) -> list[str]:
        return [r.summary_line() for r in self.results.values()]

    def primary_topic(self) -> pd.Series:
        """content_id -> primary topic id (the first of ``items.topics``)."""
        return pd.Series(primary_topics(self.items["topics"]).to_numpy(), index=self.items["content_id"].to_numpy())

    def item_topics(self) -> pd.DataFrame:
        """Long table (content_id, topic_id, rank) with rank 0 for the primary topic."""
        lists = self.items["topics"].map(_split)
        out = pd.DataFrame({"content_id": self.items["content_id"].to_numpy(), "topic_id": lists.to_numpy()}).explode("topic_id")
        out["rank"] = out.groupby("content_id", sort=False).cumcount()
        return out.reset_index(drop=True)


def find_table_path(world_dir: Path, name: str) -> Path | None:
    """``<name>/`` (part files), ``<name>.parquet`` or ``<name>.csv`` inside ``world_dir``. More than one
    of them is an error: reading one would leave the other's rows out without a word."""
    found = [c for c in (world_dir / name, world_dir / f"{name}.parquet", world_dir / f"{name}.csv") if c.exists()]
    if len(found) > 1:
        shown = " and ".join(c.name + ("/" if c.is_dir() else "") for c in found)
        raise DataError(world_dir, None, "-", f"the {name} table is there twice ({shown}); keep one, or move the "
                                              f"rows of one into the other")
    return found[0] if found else None


def load_world(world_dir: str | Path, quarantine_dir: str | Path | None = None, *, now: pd.Timestamp | None = None) -> World:
    """Load every table of a world in dependency order, checking foreign keys across tables.

    Optional tables (prerequisites, folders, folder_items) may be absent: they load as empty frames, and
    an absent folders table means every non-null ``events.folder_id`` is unknown. Raises DataError for
    file-level problems and for a cycle in the prerequisite graph.
    """
    world_dir = Path(world_dir)
    if not world_dir.is_dir():
        raise DataError(world_dir, None, "-", "world directory not found (set KT_WORLD_DIR or pass a path)")
    known: dict[str, set] = {}
    frames: dict[str, pd.DataFrame] = {}
    results: dict[str, LoadResult] = {}
    for schema in LOAD_ORDER:
        path = find_table_path(world_dir, schema.name)
        if path is None:
            if schema.required_table:
                raise DataError(world_dir / f"{schema.name}.parquet", None, "-", f"required table {schema.name} not found")
            frames[schema.name] = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.column_names})
        else:
            res = load_table(path, schema, known_ids=known, quarantine_dir=quarantine_dir, now=now)
            results[schema.name] = res
            frames[schema.name] = res.clean
        if len(schema.key) == 1:
            known[f"{schema.name}.{schema.key[0]}"] = set(frames[schema.name][schema.key[0]])
        if schema.name == "prerequisites" and path is not None:
            cycle = find_cycle(frames["prerequisites"])
            if cycle:
                raise DataError(path, None, "prerequisite_id", "prerequisites form a cycle: " + " -> ".join(cycle))
    return World(**frames, results=results)


def known_ids_for_events(world_dir: str | Path, *, now: pd.Timestamp | None = None) -> dict[str, set]:
    """``{"users.user_id": ..., "folders.folder_id": ...}``: the ids events may refer to, as
    :func:`load_world` knows them (the rows of those tables that pass validation; users required,
    an absent folders table knows no folder), for readers that stream events by themselves
    (:func:`kt.mastery.batch.iter_interactions`). Item ids are the caller's: a catalog is large."""
    world_dir = Path(world_dir)
    known: dict[str, set] = {}
    for schema in (USERS, FOLDERS):
        path = find_table_path(world_dir, schema.name)
        if path is None:
            if schema.required_table:
                raise DataError(world_dir / f"{schema.name}.parquet", None, "-", f"required table {schema.name} not found")
            ids: set = set()
        else:
            ids = set(load_table(path, schema, known_ids=known, now=now).clean[schema.key[0]])
        known[f"{schema.name}.{schema.key[0]}"] = ids
    return known


def find_cycle(prerequisites: pd.DataFrame) -> list[str] | None:
    """A cycle in the edges prerequisite_id -> topic_id as [a, b, ..., a], or None for a DAG."""
    graph: dict[str, list[str]] = {}
    for pre, topic in zip(prerequisites["prerequisite_id"], prerequisites["topic_id"], strict=True):
        graph.setdefault(pre, []).append(topic)
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in sorted(graph):
        if state.get(root):
            continue
        stack = [(root, iter(graph.get(root, ())))]
        path = [root]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            nxt = next(children, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(graph.get(nxt, ()))))
                path.append(nxt)
    return None
