"""Batch mastery scoring of every user in an event store, in bounded memory.

Pipeline (``score_world``):

1. one streaming pass over the world's ``events/`` dataset: record batches are labelled with
   the outcome rule (:func:`kt.data.outcome.events_to_interactions`), users outside this
   rank's shard (stable hash of user_id mod world_size) are dropped, and the rest are spread
   over ``n_buckets`` temporary Parquet files by user hash, so each bucket holds whole users;
2. each bucket (about ``chunk_users`` users) is read, sorted by (user, time) and scored with
   :func:`score_interactions`: users of similar length are batched through the model's
   online state (:mod:`kt.mastery.replay`) and every topic's representative panel is queried;
3. rows are appended to one Parquet file per rank (``part-{rank}.parquet`` when sharded).

Memory is bounded by one bucket plus one model batch, whatever the number of users; the
cost is one read of the events plus one write and read of the buckets (linear in events).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kt.data.schema import EVENTS
from kt.data.times import seconds_to_timestamps, series_to_seconds
from kt.mastery import state as st
from kt.mastery.catalog import TopicCatalog
from kt.mastery.config import MasteryConfig
from kt.mastery.replay import Padded, mastery_of_groups, replay, topic_stats
from kt.mastery.stages import confidence, stage_codes, stage_names
from kt.models.base import KTModel

OUTPUT_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("topic_id", pa.string()),
        ("mastery", pa.float64()),
        ("confidence", pa.float64()),
        ("n_obs", pa.int64()),
        ("stage", pa.string()),
        ("last_practiced", pa.timestamp("us", tz="UTC")),
        ("updated_at", pa.timestamp("us", tz="UTC")),
    ]
)
log = logging.getLogger("kt.mastery")
INTERACTION_FIELDS = ["user_id", "content_id", "topic_id", "t", "outcome"]


def user_hash(user_ids: np.ndarray) -> np.ndarray:
    """Stable uint64 hash of user ids (identical in every process, unlike ``hash()``)."""
    return pd.util.hash_array(np.asarray(user_ids, dtype=object))


@dataclass
class ScoreSummary:
    out: str
    rank: int
    world_size: int
    n_users: int
    n_interactions: int
    n_rows: int
    n_buckets: int
    as_of: str
    seconds: float
    n_rejected: int = 0  # events that broke the data contract, kept in rejected_path
    rejected_path: str | None = None


# --------------------------------------------------------------- in-memory scoring
def score_interactions(
    model: KTModel,
    catalog: TopicCatalog,
    interactions: pd.DataFrame,
    config: MasteryConfig,
    now: float | None = None,
    batch_users: int = 256,
    practiced_only: bool = False,
    decay_check: bool = True,
) -> pd.DataFrame:
    """Mastery rows (user x topic) from interactions (user_id, content_id, topic_id, timestamp
    or t [unix s], outcome). ``now``: unix seconds of the as-of time (default: latest event).

    decay_check: query the practised topic's panel after every interaction, so ``needs_review``
    also fires when the estimate fell since the last practice. One extra ``query`` per step:
    cheap for recurrent states, a window ``forward`` per step for attention models; without it
    only the time rule of ``needs_review`` applies.
    """
    if interactions.empty:
        return pd.DataFrame({f.name: pd.Series(dtype=object) for f in OUTPUT_SCHEMA}).drop(columns="updated_at")
    df = interactions
    t = df["t"].to_numpy(np.float64) if "t" in df.columns else series_to_seconds(df["timestamp"])
    users = df["user_id"].astype(str).to_numpy()
    order = np.lexsort((np.arange(len(df)), t, users))
    users, t = users[order], t[order]
    items, concepts, pos = catalog.encode_frame(df["content_id"].iloc[order], df["topic_id"].iloc[order])
    responses = df["outcome"].to_numpy(np.int64)[order].clip(0, 1)
    uniq, starts = np.unique(users, return_index=True)
    ends = np.append(starts[1:], len(users))
    now_s = float(t.max()) if now is None else float(now)
    # batch users of similar length together (less padding, fewer replay steps)
    by_len = np.argsort(ends - starts, kind="stable")
    dims = st.batch_dims(model)
    frames = []
    for b0 in range(0, len(uniq), batch_users):
        sel = by_len[b0 : b0 + batch_users]
        rows = [(items[starts[u] : ends[u]], concepts[starts[u] : ends[u]], responses[starts[u] : ends[u]], pos[starts[u] : ends[u]]) for u in sel]
        data = Padded.from_lists(rows)
        times = np.zeros(data.items.shape)
        for j, u in enumerate(sel):
            times[j, : ends[u] - starts[u]] = t[starts[u] : ends[u]]
        res = replay(model, catalog, model.init_state(len(sel)), dims, data, track_practiced=decay_check)
        mastery = mastery_of_groups(model, catalog, res.groups, dims, len(sel))
        n_obs, last, pm = topic_stats(data, times, res.practiced, catalog.num_topics)
        frames.append(_rows(uniq[sel], catalog.topic_ids, mastery, n_obs, last, pm, now_s, config, practiced_only))
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["user_id", "topic_id"], kind="stable", ignore_index=True)


def _rows(user_ids, topic_ids, mastery, n_obs, last, pm, now_s, config, practiced_only) -> pd.DataFrame:
    b, k = mastery.shape
    since = now_s - last
    codes = stage_codes(mastery, n_obs, since, pm, config)
    conf = np.where(np.isnan(mastery), 0.0, confidence(n_obs, since, config))
    df = pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(user_ids, dtype=object), k),
            "topic_id": np.tile(np.asarray(topic_ids, dtype=object), b),
            "mastery": mastery.reshape(-1),
            "confidence": conf.reshape(-1),
            "n_obs": n_obs.reshape(-1),
            "stage": stage_names(codes.reshape(-1)),
            "last_practiced": seconds_to_timestamps(last.reshape(-1)),
        }
    )
    return df[df["n_obs"] > 0].reset_index(drop=True) if practiced_only else df


# --------------------------------------------------------------- world scoring
def iter_interactions(world_dir: Path, items: pd.DataFrame, rule=None, batch_rows: int = 262_144,
                      rejected: RejectedEvents | None = None) -> Iterator[pd.DataFrame]:
    """Stream the world's events as interactions (user_id, content_id, topic_id, t, outcome).

    Each batch is checked against the events contract as ``kt data validate`` checks it
    (:func:`kt.data.io.validate_events`: types, ranges, timestamps not in the future, known
    content ids, user and folder ids as the validator knows them; a repeated event_id counts
    once, across batches too; a CSV row that cannot be parsed): rows that fail go to ``rejected``
    (kept aside with their file, row, field and reason, never scored) instead of being scored or
    dropped. Parquet parts and well-formed CSV files stream (:func:`kt.data.io.iter_table_batches`).
    """
    from kt.data.io import iter_table_batches, known_ids_for_events, validate_events
    from kt.data.outcome import events_to_interactions

    events_path = events_table_path(world_dir)
    now = pd.Timestamp.now(tz="UTC")  # one reference for the whole run
    known_items = set(items["content_id"])
    known = known_ids_for_events(world_dir, now=now)  # users and folders as the validator knows them
    known_users, known_folders = known["users.user_id"], known["folders.folder_id"]
    repeated = _repeated_event_hashes(events_path, batch_rows)
    seen_repeats: set[str] = set()  # ids, not hashes: a hash collision costs a lookup, never an event
    n_unrecorded = 0
    for batch in iter_table_batches(events_path, EVENTS, batch_rows):
        ev = batch.frame
        bad_rows = [dict(m, _field="-") for m in batch.malformed]
        if len(ev):
            ok, bad = validate_events(ev.drop(columns="_row"), known_content_ids=known_items, seen_event_ids=None,
                                      known_user_ids=known_users, known_folder_ids=known_folders, now=now)
            keep = np.zeros(len(ev), bool)
            keep[ok["index"].to_numpy()] = True
            reasons = {r["index"]: (r["field"], r["code"], r["reason"]) for r in bad}
            if "event_id" in ev.columns and len(repeated):  # later copies of an event_id seen in an earlier batch
                ids = ev["event_id"].astype(str)
                for i in np.flatnonzero(keep & np.isin(_id_hashes(ids), repeated)):
                    if ids.iat[i] in seen_repeats:
                        keep[i] = False
                        reasons[int(i)] = ("event_id", "duplicate_key", "duplicate event_id (an earlier copy was scored)")
                    seen_repeats.add(ids.iat[i])
            if reasons:
                idx = sorted(reasons)
                rows = ev.iloc[idx].copy()
                rows["_field"], rows["_code"], rows["_reason"] = (
                    [reasons[i][j] for i in idx] for j in range(3))
                bad_rows += rows.to_dict("records")
            typed = ok.set_index("index")  # the contract's types, also for CSV text
            inter, _ = events_to_interactions(typed.loc[np.flatnonzero(keep)], items, rule)
        else:
            inter = pd.DataFrame(columns=[*INTERACTION_FIELDS, "timestamp"])
        if bad_rows:
            if rejected is not None:
                rejected.add(pd.DataFrame(bad_rows).assign(_file=str(batch.file)))
            else:
                n_unrecorded += len(bad_rows)
        if len(inter):
            inter["t"] = series_to_seconds(inter["timestamp"])
            yield inter[INTERACTION_FIELDS]
    if n_unrecorded:
        log.warning("%s: %d events broke the data contract and were left out (kt data validate %s lists them)",
                    events_path, n_unrecorded, events_path)


def events_table_path(world_dir: str | Path) -> Path:
    """The world's events table: ``events/`` (parts), ``events.parquet`` or ``events.csv``."""
    from kt.data.io import find_table_path

    path = find_table_path(Path(world_dir), "events")
    if path is None:
        raise FileNotFoundError(f"{world_dir}: no events table (events/, events.parquet or events.csv)")
    return path


def read_world_table(world_dir: str | Path, name: str, columns: list[str]) -> pd.DataFrame | None:
    """``columns`` of a small world table (items, topics, users) from Parquet or CSV; None when absent."""
    from kt.data.io import find_table_path, table_files

    path = find_table_path(Path(world_dir), name)
    if path is None:
        return None
    frames = [pd.read_parquet(f, columns=columns) if f.suffix == ".parquet"
              else pd.read_csv(f, usecols=columns, dtype=str, keep_default_na=False) for f in table_files(path)]
    return pd.concat(frames, ignore_index=True)


def world_items(world_dir: str | Path) -> pd.DataFrame:
    items = read_world_table(world_dir, "items", ["content_id", "topics"])
    if items is None:
        raise FileNotFoundError(f"{world_dir}: not a world directory (no items table); generate one with `kt sim`")
    return items.astype({"content_id": str, "topics": str})


def _id_hashes(ids: pd.Series) -> np.ndarray:
    # over an object Series: a numpy unicode array would be as wide as the longest id in the batch
    return pd.util.hash_pandas_object(ids, index=False).to_numpy()


def _repeated_event_hashes(events_path: Path, batch_rows: int) -> np.ndarray:
    """Hashes of event ids that occur more than once in the table (one pass over that column;
    8 bytes per event while it runs)."""
    from kt.data.io import iter_table_batches

    parts = [_id_hashes(b.frame["event_id"].astype(str))
             for b in iter_table_batches(events_path, EVENTS, batch_rows, columns=["event_id"]) if len(b.frame)]
    hashes = np.concatenate(parts or [np.zeros(0, np.uint64)])
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


QUARANTINE_COLUMNS = ["_file", "_row", "_field", "_code", "_reason"]
REJECTED_COLUMNS = [*EVENTS.column_names, "_extra", *QUARANTINE_COLUMNS]  # _extra: an unparsable row's surplus fields


class RejectedEvents:
    """Events that broke the contract while scoring: written to a CSV as :func:`kt.data.io.load_table`
    quarantines them (the contract's columns, then ``_file, _row, _field, _code, _reason``; an
    unparsable CSV row's surplus fields in ``_extra``), appended batch by batch."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: count only (the ranks that do not write the file)
        self.count = 0
        # written beside the final file and moved in by commit(): a failed run leaves the last
        # complete run's file, never a part of this one's
        self._scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp") if path is not None else None

    def add(self, rows: pd.DataFrame) -> None:
        """Rejected events with the contract's columns (those present) and ``_file, _row, _field,
        _code, _reason``, the columns of a quarantine file (:func:`kt.data.io.load_table`)."""
        if self._scratch is None:
            self.count += len(rows)
            return
        # one fixed header for every batch: a column only some batches have would shift the others
        rows = rows.reindex(columns=REJECTED_COLUMNS)
        self._scratch.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(self._scratch, mode="a", header=self.count == 0, index=False)
        self.count += len(rows)

    def commit(self) -> None:
        """The file now describes this run: its rejected events, or none (an older file is removed)."""
        if self.path is None:
            return
        if self.count:
            os.replace(self._scratch, self.path)
        else:
            self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)


def score_world(
    model: KTModel,
    catalog: TopicCatalog,
    world_dir: str | Path,
    out_path: str | Path,
    config: MasteryConfig | None = None,
    chunk_users: int = 20_000,
    batch_users: int = 256,
    rank: int = 0,
    world_size: int = 1,
    now=None,
    rule=None,
    practiced_only: bool = False,
    tmp_dir: str | Path | None = None,
    decay_check: bool = True,
    rejected_path: str | Path | None = None,
) -> ScoreSummary:
    """Score this rank's users of ``world_dir`` into the Parquet file ``out_path``.

    Events that break the data contract are never scored; rank 0 writes them to ``rejected_path``
    (default ``<out_path without .parquet>.rejected.csv``); every rank skips the same events and
    counts them in its summary.
    """
    t0 = time.perf_counter()
    config = config or MasteryConfig()
    world_dir = Path(world_dir)
    items = world_items(world_dir)
    users = read_world_table(world_dir, "users", ["user_id"])
    n_users_est = len(users) if users is not None else chunk_users
    n_buckets = max(1, math.ceil(n_users_est / world_size / chunk_users))
    work = Path(tempfile.mkdtemp(prefix=f"kt-mastery-{rank}-", dir=tmp_dir))
    writers: dict[int, pq.ParquetWriter] = {}
    schema = pa.schema([("user_id", pa.string()), ("content_id", pa.string()), ("topic_id", pa.string()),
                        ("t", pa.float64()), ("outcome", pa.int8())])  # fmt: skip
    t_max = -math.inf
    n_inter = 0
    out_path = Path(out_path)
    scratch = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    default_path = out_path.with_name(out_path.stem + ".rejected.csv")
    rejected = RejectedEvents((Path(rejected_path) if rejected_path else default_path) if rank == 0 else None)
    try:
        # pass 1: shard + bucket by user hash
        for inter in iter_interactions(world_dir, items, rule, rejected=rejected):
            t_max = max(t_max, float(inter["t"].max()))
            h = user_hash(inter["user_id"].to_numpy())
            mine = (h % np.uint64(world_size)) == np.uint64(rank)
            inter, h = inter[mine], h[mine]
            n_inter += len(inter)
            bucket = ((h // np.uint64(world_size)) % np.uint64(n_buckets)).astype(np.int64)
            for b in np.unique(bucket):
                part = pa.Table.from_pandas(inter[bucket == b], schema=schema, preserve_index=False)
                if b not in writers:
                    writers[b] = pq.ParquetWriter(work / f"bucket-{b}.parquet", schema)
                writers[b].write_table(part)
        for w in writers.values():
            w.close()
        now_s = t_max if now is None else _seconds(now)
        as_of = pd.Timestamp(now_s, unit="s", tz="UTC") if math.isfinite(now_s) else pd.Timestamp.now("UTC")
        # pass 2: score bucket by bucket into a file beside the output, moved in once complete (a
        # failed run leaves the previous output whole, not a readable file with part of the users)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        n_rows = n_users = 0
        with pq.ParquetWriter(scratch, OUTPUT_SCHEMA) as out:
            for b in sorted(writers):
                inter = pq.read_table(work / f"bucket-{b}.parquet").to_pandas()
                scored = score_interactions(model, catalog, inter, config, now_s, batch_users, practiced_only, decay_check)
                scored["updated_at"] = pd.Timestamp.now("UTC").floor("us")
                out.write_table(pa.Table.from_pandas(scored, schema=OUTPUT_SCHEMA, preserve_index=False))
                n_rows += len(scored)
                n_users += scored["user_id"].nunique()
        os.replace(scratch, out_path)
        rejected.commit()
    finally:
        for w in writers.values():
            w.close()
        shutil.rmtree(work, ignore_errors=True)
        scratch.unlink(missing_ok=True)
        rejected.discard()
    return ScoreSummary(str(out_path), rank, world_size, n_users, n_inter, n_rows, n_buckets, str(as_of),
                        time.perf_counter() - t0, rejected.count, str(rejected.path) if rejected.count and rejected.path else None)  # fmt: skip


def _seconds(ts) -> float:
    from kt.data.times import to_seconds

    return to_seconds(ts)
