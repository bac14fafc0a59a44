"""Write a whole simulated world directory in the data contract (docs/ARCHITECTURE.md).

Memory stays bounded at scale: the catalog lives in memory as numpy arrays (written in
slices), users are generated and simulated one chunk at a time, each chunk's events and true
mastery are written week by week as row groups of its own Parquet part files, and its final
learner state to another part file, before the next chunk starts. Peak memory therefore
depends on ``user_chunk`` and the catalog, not on the number of users, days or events.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from kt.sim import tables as tb
from kt.sim.config import SimConfig
from kt.sim.dynamics import DAY
from kt.sim.simulate import ChunkHistory, LearnerState, simulate_chunk
from kt.sim.world import (
    Catalog,
    UserChunk,
    chunk_bounds,
    content_ids,
    make_catalog,
    make_users,
    topic_ids,
    user_ids,
)

FORMAT_VERSION = 1
ITEM_SLICE = 250_000
TABLE_FILES = (
    "topics.parquet", "prerequisites.parquet", "items.parquet", "folders.parquet",
    "folder_items.parquet", "users.parquet", "world.json",
)  # fmt: skip


@dataclass
class WorldSummary:
    out_dir: str
    n_topics: int
    n_prerequisites: int
    n_items: int
    n_users: int
    n_folders: int
    n_folder_items: int
    n_events: int
    n_true_mastery: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def start_micros(cfg: SimConfig) -> int:
    dt = datetime.fromisoformat(cfg.start)
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return int(dt.timestamp()) * 1_000_000


def _write_topics(cat: Catalog, out: Path) -> int:
    tids = topic_ids(cat.n_topics)
    tb.write_table(
        pa.table(
            {"topic_id": tids, "name": cat.topic_names, "parent_id": tb.take(tids, cat.parent, null_below_zero=True)},
            schema=tb.TOPICS,
        ),
        out / "topics.parquet",
    )
    t, slot = np.nonzero(cat.prereq >= 0)
    tb.write_table(
        pa.table({"topic_id": tb.take(tids, t), "prerequisite_id": tb.take(tids, cat.prereq[t, slot])},
                 schema=tb.PREREQUISITES),
        out / "prerequisites.parquet",
    )  # fmt: skip
    return len(t)


def _write_items(cat: Catalog, out: Path, start_us: int) -> None:
    cfg = cat.config
    tids = topic_ids(cat.n_topics)
    langs, kinds = cat.languages, cat.kinds
    writer = tb.PartWriter(out / "items.parquet", tb.ITEMS)
    for lo in range(0, cfg.n_items, ITEM_SLICE):
        idx = np.arange(lo, min(lo + ITEM_SLICE, cfg.n_items))
        cids = content_ids(idx, cfg.n_items)
        k, k2 = cat.item_topic[idx].tolist(), cat.item_topic2[idx].tolist()
        lang = [langs[i] for i in cat.item_language[idx].tolist()]
        kind = [kinds[i] for i in cat.item_kind[idx].tolist()]
        title = [f"{cat.topic_names[a]}: {b} {c[1:]} ({la})" for a, b, c, la in zip(k, kind, cids, lang, strict=True)]
        url = [f"https://{b}.example.org/{la}/{c}" for b, la, c in zip(kind, lang, cids, strict=True)]
        topics = [tids[a] if b < 0 else f"{tids[a]}|{tids[b]}" for a, b in zip(k, k2, strict=True)]
        writer.write(
            pa.table(
                {"content_id": cids, "title": title, "url": url, "language": lang, "topics": topics,
                 "difficulty": cat.difficulty[idx], "kind": kind,
                 "created_at": tb.timestamps(start_us, cat.created[idx])},
                schema=tb.ITEMS,
            )
        )  # fmt: skip
    writer.close()


def _folder_ids(users: UserChunk) -> list[str]:
    n_f = np.diff(users.folder_ptr)
    owner = np.repeat(np.arange(users.n), n_f) + users.lo
    slot = np.arange(len(owner)) - users.folder_ptr[owner - users.lo]
    return [f"f{u}-{j}" for u, j in zip(owner.tolist(), slot.tolist(), strict=True)]


def _write_users(cat: Catalog, users: UserChunk, w: dict[str, tb.PartWriter], start_us: int) -> list[str]:
    cfg = cat.config
    langs = cat.languages
    uids = user_ids(np.arange(users.lo, users.hi), cfg.n_users)
    lang_str = [langs[a] if b < 0 else f"{langs[a]}|{langs[b]}" for a, b in zip(users.lang1.tolist(), users.lang2.tolist(), strict=True)]
    w["users"].write(pa.table({"user_id": uids, "languages": lang_str,
                               "created_at": tb.timestamps(start_us, users.created)}, schema=tb.USERS))  # fmt: skip
    fids = _folder_ids(users)
    owner = np.repeat(np.arange(users.n), np.diff(users.folder_ptr))
    w["folders"].write(
        pa.table(
            {"folder_id": fids, "user_id": tb.take(uids, owner),
             "name": [f"{cat.topic_names[t]} reading list" for t in users.folder_topic.tolist()],
             "created_at": tb.timestamps(start_us, users.folder_created)},
            schema=tb.FOLDERS,
        )
    )  # fmt: skip
    fi_folder = np.repeat(np.arange(len(fids)), np.diff(users.folder_item_ptr))
    w["folder_items"].write(
        pa.table(
            {"folder_id": tb.take(fids, fi_folder), "content_id": content_ids(users.folder_items, cfg.n_items),
             "added_at": tb.timestamps(start_us, users.folder_added)},
            schema=tb.FOLDER_ITEMS,
        )
    )  # fmt: skip
    return fids


class _HistoryWriter:
    """Writes one user chunk's history blocks as row groups of its events/ and true_mastery/ parts."""

    def __init__(self, cat: Catalog, users: UserChunk, fids: list[str], out: Path, part: int, start_us: int):
        self.cat, self.users, self.fids, self.start_us = cat, users, fids, start_us
        self.uids = pa.array(user_ids(np.arange(users.lo, users.hi), cat.config.n_users), type=pa.string())
        self.tids = pa.array(topic_ids(cat.n_topics), type=pa.string())
        self.events = tb.PartWriter(out / "events" / f"part-{part:05d}.parquet", tb.EVENTS)
        self.mastery = tb.PartWriter(out / "true_mastery" / f"part-{part:05d}.parquet", tb.TRUE_MASTERY)
        self.filed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (folder, item, t) of events with a folder

    def __call__(self, hist: ChunkHistory) -> None:
        cfg, lo = self.cat.config, self.users.lo
        has_folder = hist.folder >= 0
        self.filed.append((hist.folder[has_folder], hist.item[has_folder], hist.t[has_folder]))
        event_ids = [f"e{u}-{n}" for u, n in zip((hist.user + lo).tolist(), hist.seq.tolist(), strict=True)]
        self.events.write(
            pa.table(
                {"event_id": event_ids, "user_id": tb.take(self.uids, hist.user),
                 "content_id": content_ids(hist.item, cfg.n_items), "timestamp": tb.timestamps(self.start_us, hist.t),
                 "folder_id": tb.take(self.fids if self.fids else [""], hist.folder, null_below_zero=True),
                 "read_fraction": hist.read_fraction, "dwell_seconds": hist.dwell, "n_highlights": hist.n_highlights,
                 "quiz_correct": pa.array(hist.quiz, from_pandas=True)},
                schema=tb.EVENTS,
            )
        )  # fmt: skip
        self.mastery.write(
            pa.table(
                {"user_id": tb.take(self.uids, hist.tm_user), "topic_id": tb.take(self.tids, hist.tm_topic),
                 "timestamp": tb.timestamps(self.start_us, hist.tm_t), "mastery": hist.tm_mastery},
                schema=tb.TRUE_MASTERY,
            )
        )  # fmt: skip

    def new_folder_links(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(folder, item, added) of the links the chunk's events filed that the folders did not hold
        at day 0, each at its first filing: a folder grows with what its owner files into it."""
        users, n_items = self.users, self.cat.config.n_items
        folder = np.concatenate([f for f, _, _ in self.filed] or [np.zeros(0, np.int64)])
        item = np.concatenate([i for _, i, _ in self.filed] or [np.zeros(0, np.int64)])
        t = np.concatenate([x for _, _, x in self.filed] or [np.zeros(0)])
        held = np.repeat(np.arange(len(users.folder_topic)), np.diff(users.folder_item_ptr)) * n_items + users.folder_items
        key = folder.astype(np.int64) * n_items + item.astype(np.int64)
        order = np.lexsort((t, key))  # per link, earliest filing first
        key, t = key[order], t[order]
        first = np.diff(key, prepend=-1) != 0
        new = first & ~np.isin(key, held)
        return key[new] // n_items, key[new] % n_items, t[new]

    def close(self) -> tuple[int, int]:
        self.events.close()
        self.mastery.close()
        return self.events.rows, self.mastery.rows


def _write_state(cat: Catalog, users: UserChunk, st: LearnerState, out: Path, part: int) -> None:
    k = cat.n_topics
    uids = pa.array(user_ids(np.arange(users.lo, users.hi), cat.config.n_users), type=pa.string())
    offsets = pa.array(np.arange(0, users.n * k + 1, k, dtype=np.int32))
    tb.write_table(
        pa.table(
            {"user_id": uids,
             "mastery": pa.ListArray.from_arrays(offsets, pa.array(st.m.ravel())),
             "last_practice": pa.ListArray.from_arrays(offsets, pa.array(st.last.ravel())),
             "n_practice": pa.ListArray.from_arrays(offsets, pa.array(st.n_practice.ravel().astype(np.int32))),
             "floor": pa.ListArray.from_arrays(offsets, pa.array(st.floor.ravel())),
             "n_events": st.n_events, "clock": st.clock},
            schema=tb.LEARNER_STATE,
        ),
        out / "learner_state" / f"part-{part:05d}.parquet",
    )  # fmt: skip


def world_metadata(cfg: SimConfig, counts: dict) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "generator": "kt.sim",
        "config": cfg.to_dict(),
        "start": datetime.fromtimestamp(start_micros(cfg) / 1e6, tz=UTC).isoformat(),
        "end": datetime.fromtimestamp(start_micros(cfg) / 1e6 + cfg.days * DAY, tz=UTC).isoformat(),
        "counts": counts,
        "dynamics": "docs/simulator.md",
    }


def generate_world(config: SimConfig, out_dir: str | Path, progress: bool = False) -> WorldSummary:
    """Generate the world of ``config`` into ``out_dir``.

    An existing world there (a ``world.json``) is replaced: the new one is written into a scratch
    directory beside it and moved in only when complete, so a failure leaves the old world whole;
    files that are not simulator outputs stay. A non-empty directory without ``world.json`` is
    refused: its ``events/`` (say) may be someone's own data.
    """
    out = Path(out_dir)
    if out.is_dir() and any(out.iterdir()) and not (out / "world.json").exists():
        raise ValueError(f"{out}: exists and is not a simulated world (no world.json); refusing to replace "
                         "what is in it: choose another --out or empty it")
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.generating-", dir=out.parent))
    try:
        summary = _generate(config, scratch, progress)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    out.mkdir(exist_ok=True)
    for entry in sorted(scratch.iterdir(), key=lambda p: p.name == "world.json"):  # world.json last
        target = out / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        entry.replace(target)
    shutil.rmtree(scratch, ignore_errors=True)
    summary.out_dir = str(out)
    return summary


def _generate(config: SimConfig, out: Path, progress: bool) -> WorldSummary:
    t0 = time.perf_counter()
    start_us = start_micros(config)
    cat = make_catalog(config)
    n_pre = _write_topics(cat, out)
    _write_items(cat, out, start_us)
    writers = {
        "users": tb.PartWriter(out / "users.parquet", tb.USERS),
        "folders": tb.PartWriter(out / "folders.parquet", tb.FOLDERS),
        "folder_items": tb.PartWriter(out / "folder_items.parquet", tb.FOLDER_ITEMS),
    }
    n_events = n_tm = 0
    bounds = chunk_bounds(config)
    for part, (lo, hi) in enumerate(bounds):
        users = make_users(cat, lo, hi, part)
        fids = _write_users(cat, users, writers, start_us)
        history = _HistoryWriter(cat, users, fids, out, part, start_us)
        st = simulate_chunk(cat, users, part, history)
        folder, item, added = history.new_folder_links()
        writers["folder_items"].write(
            pa.table({"folder_id": tb.take(fids, folder), "content_id": content_ids(item, config.n_items),
                      "added_at": tb.timestamps(start_us, added)}, schema=tb.FOLDER_ITEMS)
        )  # fmt: skip
        ne, nt = history.close()
        _write_state(cat, users, st, out, part)
        n_events += ne
        n_tm += nt
        if progress:
            print(f"  users {hi}/{config.n_users}: {n_events} events, {time.perf_counter() - t0:.1f}s", flush=True)
        del users, history, st
    for w in writers.values():
        w.close()
    counts = {
        "topics": config.n_topics, "prerequisites": n_pre, "items": config.n_items, "users": config.n_users,
        "folders": writers["folders"].rows, "folder_items": writers["folder_items"].rows,
        "events": n_events, "true_mastery": n_tm,
    }  # fmt: skip
    (out / "world.json").write_text(json.dumps(world_metadata(config, counts), indent=2, sort_keys=True) + "\n")
    return WorldSummary(
        out_dir=str(out), n_topics=config.n_topics, n_prerequisites=n_pre, n_items=config.n_items,
        n_users=config.n_users, n_folders=counts["folders"], n_folder_items=counts["folder_items"],
        n_events=n_events, n_true_mastery=n_tm, seconds=time.perf_counter() - t0,
    )  # fmt: skip
