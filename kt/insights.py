"""Read-only views of a world, its models and its evaluations, for people browsing them.

Everything the Streamlit explorer (``app/explorer.py``) shows that is not drawing lives here,
so the explorer stays a thin shell and the same numbers can be checked in tests or printed
from a notebook:

* :class:`WorldIndex`: a world directory opened for browsing. Its tables are read once
  through the data contract (:func:`kt.data.io.load_world`, as every command reads them), so
  rejected rows are left out here too; users are searched and paged without handing all of
  them to a widget; one user's events are a slice of a (user, time)-sorted copy built once,
  so a page view never scans the event log.
* :func:`mastery_timeline`: a user's interactions replayed through the KT model's online
  state (``init_state`` / ``update`` / ``query``) with every shown topic's mastery read after
  each step; the same representative panels as :class:`kt.mastery.MasteryTracker`.
* :func:`what_if_bundle`: a copy of the user's tracker state absorbs a bundle as if every item
  were understood; mastery per topic before and after.
* MLflow views (:func:`runs_table`, :func:`metric_history`, :func:`champion_info`) over the
  project's store, and the planner's policy comparison (:func:`policy_comparison`).

Lower layers never import this module (it sits beside ``kt.api``).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kt.config import Settings
from kt.data.schema import primary_topics

MASTERY_SCORES = ("mastery.parquet", "mastery")  # under Settings.data_dir: one file or part files
POLICY_METRICS = ("e_p", "success_rate", "coverage", "diversity")
TABLES = ("users", "items", "folders", "folder_items", "events", "topics", "prerequisites")


class MissingPiece(LookupError):
    """A part of the embedded default is absent; the message names the command that makes it."""


# ----------------------------------------------------------------------------- world files
def _parquet_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    import pyarrow.dataset as pads

    files = _parquet_files(path)
    if not files:
        raise MissingPiece(f"{path}: no Parquet files")
    return pads.dataset([str(f) for f in files], format="parquet").to_table(columns=columns).to_pandas()


@dataclass
class UserPage:
    """One page of a user search."""

    user_ids: list[str]
    total: int  # users matching the query
    page: int
    n_pages: int


class WorldIndex:
    """A world directory opened for browsing (see the module docstring).

    Tables are read lazily and kept; the event copy holds only the columns a timeline shows.
    Thread-safe: one instance can serve every explorer session.
    """

    EVENT_COLUMNS = ("event_id", "user_id", "content_id", "timestamp", "folder_id", "read_fraction",
                     "dwell_seconds", "n_highlights", "quiz_correct")  # fmt: skip

    def __init__(self, world_dir: str | Path) -> None:
        self.world_dir = Path(world_dir)
        if not (self.world_dir / "items.parquet").exists() and not (self.world_dir / "items").is_dir():
            raise MissingPiece(f"{self.world_dir}: no world here (no items.parquet); run `kt demo` (or `kt sim`)")
        self._lock = threading.RLock()  # makers read other tables through _memo
        self._cache: dict[str, Any] = {}

    def _memo(self, key: str, make):
        with self._lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    # ------------------------------------------------------------------ tables
    def validated(self):
        """The world through the data contract, as every command reads it
        (:func:`kt.data.io.load_world`, loaded once): rows it rejects (a repeated event_id, an event
        on an unknown item, an impossible value) are not shown, so the explorer's numbers are the
        CLI's and the API's. Nothing is written (no quarantine); :meth:`rejected` counts them."""

        def make():
            from kt.data.io import load_world

            return load_world(self.world_dir)

        return self._memo("validated", make)

    def rejected(self) -> dict[str, int]:
        """Table -> rows the data contract rejected (only tables with any)."""
        return {name: r.n_rejected for name, r in self.validated().results.items() if r.n_rejected}

    def counts(self) -> dict[str, int]:
        """Valid rows per table (0 for an absent optional table)."""
        world = self.validated()
        return {name: len(getattr(world, name)) for name in TABLES}

    def table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        frame = getattr(self.validated(), name)
        return frame if columns is None else frame[[c for c in columns if c in frame.columns]]

    @property
    def items(self) -> pd.DataFrame:
        return self.table("items")

    @property
    def topics(self) -> pd.DataFrame:
        return self.table("topics")

    @property
    def prerequisites(self) -> pd.DataFrame:
        return self.table("prerequisites", ["topic_id", "prerequisite_id"])

    def topic_names(self) -> dict[str, str]:
        t = self.topics
        return dict(zip(t["topic_id"].astype(str), t["name"].astype(str), strict=True)) if len(t) else {}

    def metadata(self) -> dict:
        """The simulator's ``world.json`` (empty for a world from elsewhere)."""
        p = self.world_dir / "world.json"
        return json.loads(p.read_text()) if p.exists() else {}

    # ------------------------------------------------------------------ users
    def _user_ids(self) -> np.ndarray:
        def make():
            ids = self.table("users", ["user_id"])["user_id"].astype(str).to_numpy(dtype=object)
            return np.sort(ids)

        return self._memo("user_ids", make)

    def search_users(self, query: str = "", page: int = 0, page_size: int = 50) -> UserPage:
        """Users whose id contains ``query`` (case-insensitive), sorted, one page of them."""
        ids = self._user_ids()
        q = query.strip().lower()
        if q:
            ids = ids[pd.Series(ids).str.lower().str.contains(q, regex=False).to_numpy()]
        n_pages = max(1, math.ceil(len(ids) / page_size))
        page = int(min(max(page, 0), n_pages - 1))
        return UserPage(ids[page * page_size : (page + 1) * page_size].tolist(), len(ids), page, n_pages)

    def user_languages(self, user_id: str) -> list[str]:
        users = self.table("users", ["user_id", "languages"])
        row = users.loc[users["user_id"].astype(str) == str(user_id), "languages"]
        return [x for x in str(row.iloc[0]).split("|") if x] if len(row) and pd.notna(row.iloc[0]) else []

    # ------------------------------------------------------------------ events
    def _events_sorted(self):
        """(Arrow table of events sorted by user then time, sorted unique user ids, offsets (n_users + 1,)).

        Sorted once in Arrow (C++), kept as Arrow: a user's events are a zero-copy slice and only
        that slice becomes a DataFrame."""

        def make():
            import pyarrow as pa
            import pyarrow.compute as pc

            events = self.validated().events
            if events.empty:
                empty = pa.table({c: pa.array([], pa.string()) for c in ("event_id", "user_id", "content_id")})
                return empty, np.zeros(0, object), np.zeros(1, np.int64)
            tbl = pa.Table.from_pandas(events[[c for c in self.EVENT_COLUMNS if c in events.columns]], preserve_index=False)
            order = pc.sort_indices(tbl, sort_keys=[("user_id", "ascending"), ("timestamp", "ascending")])
            tbl = tbl.take(order).combine_chunks()
            enc = pc.dictionary_encode(tbl.column("user_id").combine_chunks().cast(pa.string()))
            codes = enc.indices.to_numpy(zero_copy_only=False)
            starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, np.int64)
            uniq = np.asarray(enc.dictionary.to_pylist(), dtype=object)[codes[starts]]
            return tbl, uniq, np.append(starts, len(codes)).astype(np.int64)

        return self._memo("events", make)

    def user_events(self, user_id: str) -> pd.DataFrame:
        """The user's events in time order (empty when none)."""
        tbl, uniq, starts = self._events_sorted()
        i = int(np.searchsorted(uniq, str(user_id)))
        if i >= len(uniq) or uniq[i] != str(user_id):
            return tbl.slice(0, 0).to_pandas()
        return tbl.slice(int(starts[i]), int(starts[i + 1] - starts[i])).to_pandas()

    def user_interactions(self, user_id: str, rule=None) -> pd.DataFrame:
        """The user's events through the outcome rule: user_id, content_id, topic_id, timestamp, outcome."""
        from kt.data.outcome import events_to_interactions

        ev = self.user_events(user_id)
        if ev.empty:
            return pd.DataFrame(columns=["event_id", "user_id", "content_id", "topic_id", "timestamp", "outcome"])
        inter, _ = events_to_interactions(ev, self.table("items", ["content_id", "topics"]), rule)
        return inter.reset_index(drop=True)

    def highlight_timeline(self, user_id: str, rule=None) -> pd.DataFrame:
        """The user's events with item title, kind, language, primary topic and the rule's outcome
        (1 understood, 0 not, NaN ambiguous), newest last."""
        from kt.data.outcome import OutcomeRule

        ev = self.user_events(user_id)
        items = self.table("items", ["content_id", "title", "kind", "language", "topics", "difficulty"])
        out = ev.merge(items, on="content_id", how="left")
        out["topic_id"] = primary_topics(out["topics"])
        out["outcome"] = (rule or OutcomeRule()).label(ev) if len(ev) else pd.Series(dtype=float)
        names = self.topic_names()
        out["topic"] = out["topic_id"].map(names).fillna(out["topic_id"])
        return out.drop(columns=["topics"])

    # ------------------------------------------------------------------ content
    def content_breakdown(self) -> pd.DataFrame:
        """Item counts by language, kind and difficulty band (quintiles of [0, 1])."""
        items = self.table("items", ["language", "kind", "difficulty"])
        band = pd.cut(items["difficulty"].astype(float), bins=np.linspace(0, 1, 6), include_lowest=True,
                      labels=["0.0-0.2", "0.2-0.4", "0.4-0.6", "0.6-0.8", "0.8-1.0"])  # fmt: skip
        df = pd.DataFrame({"language": items["language"].astype(str), "kind": items["kind"].astype(str),
                           "difficulty": band.astype(str)})  # fmt: skip
        return df.value_counts().rename("items").reset_index()


# ----------------------------------------------------------------------------- model state views
def _practised_topics(inter: pd.DataFrame, max_topics: int) -> list[str]:
    counts = inter["topic_id"].astype(str).value_counts(sort=False)
    counts = counts.sort_index().sort_values(ascending=False, kind="stable")
    return counts.index[:max_topics].tolist()


def _select_steps(n: int, max_steps: int) -> np.ndarray:
    """Step positions shown: all when few, else evenly spread, always with the last."""
    if n <= max_steps:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_steps).round().astype(np.int64))


def mastery_timeline(
    tracker, interactions: pd.DataFrame, max_steps: int = 150, max_topics: int = 12, topics: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mastery per topic after each of a user's interactions, as a long table.

    tracker: a :class:`kt.mastery.MasteryTracker` (its model and topic catalog are used; its
    stored states are not touched). interactions: one user's (content_id, topic_id, timestamp,
    outcome) rows. Every interaction is replayed; mastery is read at ``max_steps`` of them
    (evenly spread, always the last) for ``topics`` (default: the ``max_topics`` most practised).
    Columns: step (1-based), timestamp, content_id, practised (topic of the step), outcome,
    topic_id, mastery. Same mastery definition as ``tracker.topic_mastery``.
    """
    import torch

    cols = ["step", "timestamp", "content_id", "practised", "outcome", "topic_id", "mastery"]
    if interactions.empty:
        return pd.DataFrame(columns=cols)
    inter = interactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    shown = [str(t) for t in topics] if topics is not None else _practised_topics(inter, max_topics)
    cat, model = tracker.catalog, tracker.model
    pos = np.array([cat.topic_index[t] for t in shown if t in cat.topic_index], dtype=np.int64)
    shown = [cat.topic_ids[k] for k in pos]
    items, concepts, _ = cat.encode(inter["content_id"].astype(str).tolist(), inter["topic_id"].tolist())
    responses = inter["outcome"].astype(np.int64).clip(0, 1).to_numpy().copy()
    keep = set(_select_steps(len(inter), max_steps).tolist())
    dev = model.device
    rows = []
    with torch.no_grad():
        state = model.init_state(1)
        for t in range(len(inter)):
            state = model.update(state, torch.as_tensor(items[t : t + 1], device=dev),
                                 torch.as_tensor(concepts[t : t + 1], device=dev),
                                 torch.as_tensor(responses[t : t + 1], device=dev))  # fmt: skip
            if t in keep and len(pos):
                m = cat.mastery_all(model, state, 1)[0, pos]  # (K_shown,)
                rows.append((t + 1, m))
    steps = np.repeat([r[0] for r in rows], len(shown))
    mastery = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
    at = inter.iloc[steps - 1] if len(steps) else inter.iloc[0:0]
    return pd.DataFrame({
        "step": steps, "timestamp": at["timestamp"].to_numpy(), "content_id": at["content_id"].astype(str).to_numpy(),
        "practised": at["topic_id"].astype(str).to_numpy(), "outcome": at["outcome"].astype(int).to_numpy(),
        "topic_id": np.tile(np.asarray(shown, dtype=object), len(rows)), "mastery": mastery,
    })[cols]  # fmt: skip


def what_if_bundle(tracker, user_id: str, content_ids: Sequence[str], outcome: int = 1) -> pd.DataFrame:
    """Predicted mastery per topic if the user finished ``content_ids`` (in order) with ``outcome``.

    A copy of the user's stored tracker state absorbs the items through ``model.update``; the
    stored state is left unchanged. Columns: topic_id, before, after, delta, in_bundle (the
    topic is the primary topic of a bundle item), sorted by delta descending.
    """
    import torch

    rec = tracker.store.load(str(user_id))
    if rec is None:
        raise KeyError(f"the tracker holds no state for user {user_id!r}; rebuild it from their interactions first")
    model, cat = tracker.model, tracker.catalog
    dev = model.device
    state = {k: v.to(dev) for k, v in rec.state.items()}
    before = cat.mastery_all(model, state, 1)[0]
    cids = [str(c) for c in content_ids if str(c) in cat.item_topic]
    unknown = [str(c) for c in content_ids if str(c) not in cat.item_topic]
    if unknown:
        raise KeyError(f"content id(s) unknown to the tracker's catalog: {', '.join(unknown[:5])}")
    items, concepts, pos = cat.encode(cids)
    with torch.no_grad():
        for t in range(len(cids)):
            state = model.update(state, torch.as_tensor(items[t : t + 1], device=dev),
                                 torch.as_tensor(concepts[t : t + 1], device=dev),
                                 torch.as_tensor(np.array([int(outcome)]), device=dev))  # fmt: skip
    after = cat.mastery_all(model, state, 1)[0]
    in_bundle = np.zeros(cat.num_topics, bool)
    in_bundle[pos[pos >= 0]] = True
    out = pd.DataFrame({"topic_id": cat.topic_ids, "before": before, "after": after, "delta": after - before,
                        "in_bundle": in_bundle})  # fmt: skip
    return out.sort_values(["delta", "topic_id"], ascending=[False, True], kind="stable", ignore_index=True)


def path_table(path) -> pd.DataFrame:
    """A :class:`kt.planner.LearningPath` as one row per item with its bundle and reasons."""
    rows = []
    for b_i, b in enumerate(path.bundles, start=1):
        for i_i, it in enumerate(b.items, start=1):
            rows.append({"bundle": b_i, "bundle_topic": b.topic_name, "bundle_reason": b.reason, "order": i_i,
                         "content_id": it.content_id, "topic_id": it.topic_id, "stage": it.stage,
                         "predicted_success": it.predicted_success, "difficulty": it.difficulty, "kind": it.kind,
                         "language": it.language, "source": it.source, "reason": it.reason})  # fmt: skip
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- batch mastery
def find_mastery_scores(settings: Settings) -> Path | None:
    """The batch-scored mastery (``kt mastery score --out data/mastery.parquet``), if present."""
    for name in MASTERY_SCORES:
        p = settings.data_dir / name
        if p.is_file() or (p.is_dir() and any(p.glob("*.parquet"))):
            return p
    return None


def mastery_distribution(path: str | Path, bins: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """From a batch-scored mastery file: (histogram rows topic_id, bin, users; stage rows
    topic_id, stage, users). Only practised cells (n_obs > 0) count."""
    from kt.mastery.config import STAGES

    df = read_parquet(Path(path), ["topic_id", "mastery", "n_obs", "stage"])
    df = df[(df["n_obs"] > 0) & df["mastery"].notna()]
    edges = np.linspace(0, 1, bins + 1)
    labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    b = pd.cut(df["mastery"].clip(0, 1), bins=edges, include_lowest=True, labels=labels)
    hist = (pd.DataFrame({"topic_id": df["topic_id"].astype(str), "bin": b.astype(str)})
            .value_counts().rename("users").reset_index().sort_values(["topic_id", "bin"], ignore_index=True))  # fmt: skip
    stages = df.groupby(["topic_id", "stage"]).size().rename("users").reset_index()
    stages["stage"] = pd.Categorical(stages["stage"], categories=list(STAGES))
    return hist, stages.sort_values(["topic_id", "stage"], ignore_index=True)


# ----------------------------------------------------------------------------- MLflow
def _store_exists(settings: Settings) -> bool:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True  # a server or another backend: let MLflow answer


def _client(settings: Settings):
    from kt.train.tracking import import_mlflow

    if not _store_exists(settings):
        raise MissingPiece(f"no MLflow store at {settings.mlflow_tracking_uri}; run `kt demo` (or `kt train`)")
    mlflow = import_mlflow()
    return mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def runs_table(settings: Settings, max_runs: int = 500) -> pd.DataFrame:
    """Runs of every experiment in the store, newest first: run_id, run_name, status, start_time,
    experiment, then ``metrics.*``, ``params.*`` and ``tags.*`` columns (mlflow.search_runs)."""
    client = _client(settings)  # first: it imports mlflow with ktpath's environment defaults
    import mlflow

    exps = client.search_experiments()
    if not exps:
        return pd.DataFrame()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_ids=[e.experiment_id for e in exps], max_results=max_runs,
                              order_by=["attributes.start_time DESC"])  # fmt: skip
    if runs.empty:
        return runs
    names = {e.experiment_id: e.name for e in exps}
    runs.insert(1, "run_name", runs.get("tags.mlflow.runName"))
    runs.insert(2, "experiment", runs["experiment_id"].map(names))
    return runs


def metric_history(settings: Settings, run_id: str, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-step metric values of a run: key, step, value (all metrics logged at several steps
    when ``keys`` is None)."""
    client = _client(settings)
    run = client.get_run(run_id)
    rows = []
    for key in keys if keys is not None else sorted(run.data.metrics):
        hist = client.get_metric_history(run_id, key)
        if keys is None and len(hist) < 2:
            continue
        rows += [{"key": key, "step": m.step, "value": m.value} for m in hist]
    return pd.DataFrame(rows, columns=["key", "step", "value"]).sort_values(["key", "step"], ignore_index=True)


def compare_runs(runs: pd.DataFrame, run_ids: Sequence[str]) -> pd.DataFrame:
    """Params and metrics of runs side by side: index ``params.x`` / ``metrics.y``, one column per
    run (its name), rows that differ first."""
    sel = runs.set_index("run_id").loc[list(run_ids)]
    cols = [c for c in sel.columns if c.startswith(("params.", "metrics."))]
    table = sel[cols].T.astype(object)
    table = table.where(table.notna(), None).map(lambda v: v if v is None else str(v))
    table.columns = [f"{n} ({r[:8]})" for r, n in zip(sel.index, sel["run_name"].fillna(""), strict=True)]
    table = table.dropna(how="all")
    # a value one run has and the other lacks (a model's own parameter) is a difference too
    differs = table.fillna("\x00missing").nunique(axis=1) > 1
    return pd.concat([table[differs], table[~differs]]).assign(differs=lambda d: d.index.isin(table.index[differs]))


@dataclass
class ChampionInfo:
    name: str
    version: int
    run_id: str | None
    run_name: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def champion_info(settings: Settings) -> ChampionInfo | None:
    """The registered model's ``champion`` version with its run's metrics, or None when no
    version carries the alias."""
    from kt.train.tracking import CHAMPION

    client = _client(settings)  # first: it imports mlflow with ktpath's environment defaults
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version_by_alias(settings.registered_model, CHAMPION)
    except MlflowException:
        return None
    run_id = mv.run_id or mv.tags.get("run_id")
    metrics, params, name = {}, {}, None
    if run_id:
        run = client.get_run(run_id)
        metrics, params, name = dict(run.data.metrics), dict(run.data.params), run.data.tags.get("mlflow.runName")
    return ChampionInfo(settings.registered_model, int(mv.version), run_id, name, metrics, params, dict(mv.tags))


# ----------------------------------------------------------------------------- planner evaluation
def find_planner_results(settings: Settings) -> list[Path]:
    """Planner evaluation results: ``data/planner*.json`` (written by ``kt demo``) first, then
    ``bench/results/planner*.json`` under the project home, newest first within each."""
    out: list[Path] = []
    for d in (settings.data_dir, settings.home / "bench" / "results"):
        if d.is_dir():
            out += sorted(d.glob("planner*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return out


def _evaluation_doc(doc: Any) -> Any:
    """The evaluation part of a results file: ``bench/bench_planner.py`` nests it under
    ``"evaluation"``, beside ``"machine"`` and ``"latency"``; ``kt demo`` writes it at the top."""
    if isinstance(doc, dict) and isinstance(doc.get("evaluation"), dict):
        return doc["evaluation"]
    return doc


def _result_rows(doc: Any) -> list[dict]:
    """Policy rows from the accepted layouts: a list of rows, ``{"results"|"policies": [...]}``,
    or ``{policy_name: {metrics}}``."""
    if isinstance(doc, list):
        return [r for r in doc if isinstance(r, dict)]
    if isinstance(doc, dict):
        for key in ("results", "policies"):
            if isinstance(doc.get(key), list):
                return [r for r in doc[key] if isinstance(r, dict)]
            if isinstance(doc.get(key), dict):
                return [{"policy": k, **v} for k, v in doc[key].items() if isinstance(v, dict)]
        rows = [{"policy": k, **v} for k, v in doc.items() if isinstance(v, dict) and "e_p" in v]
        if rows:
            return rows
    return []


def policy_comparison(path: str | Path) -> pd.DataFrame:
    """Policies of a planner evaluation file (the rows of :class:`kt.planner.evaluation.PolicyResult`),
    best E_p first. Raises ValueError naming the file when it holds no policy rows."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    rows = _result_rows(_evaluation_doc(doc))
    if not rows or any("policy" not in r for r in rows):
        raise ValueError(f"{path}: no policy results (expected rows with 'policy' and {', '.join(POLICY_METRICS)})")
    df = pd.DataFrame(rows)
    for c in POLICY_METRICS:
        if c not in df.columns:
            df[c] = np.nan
    front = ["policy", *POLICY_METRICS]
    df = df[front + [c for c in df.columns if c not in front and not isinstance(df[c].iloc[0], list | dict)]]
    return df.sort_values("e_p", ascending=False, kind="stable", ignore_index=True)


# ----------------------------------------------------------------------------- prerequisite drawing
def prerequisite_dot(topics: pd.DataFrame, prerequisites: pd.DataFrame, mastery: dict[str, float] | None = None,
                     max_topics: int = 200) -> str:
    """The prerequisite DAG as Graphviz DOT (edges prerequisite -> topic, left to right).

    ``mastery`` (topic_id -> value in [0, 1]) shades nodes from white to green; the first
    ``max_topics`` topics (by id) are drawn, with the edges among them.
    """
    ids = sorted(topics["topic_id"].astype(str))[:max_topics]
    keep = set(ids)
    names = dict(zip(topics["topic_id"].astype(str), topics["name"].astype(str), strict=True))

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph prerequisites {", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica", fontsize=10];']  # fmt: skip
    for t in ids:
        attrs = [f"label={q(names.get(t, t))[:-1]}\\n{q(t)[1:]}"]  # two lines: name, id
        m = (mastery or {}).get(t)
        if m is not None and np.isfinite(m):
            g = int(255 - 120 * float(np.clip(m, 0, 1)))
            attrs.append(f'fillcolor="#{g:02x}ff{g:02x}"')
            attrs.append(f"tooltip={q(f'mean mastery {m:.2f}')}")
        lines.append(f"  {q(t)} [{', '.join(attrs)}];")
    for pre, topic in zip(prerequisites["prerequisite_id"].astype(str), prerequisites["topic_id"].astype(str), strict=True):
        if pre in keep and topic in keep:
            lines.append(f"  {q(pre)} -> {q(topic)};")
    lines.append("}")
    return "\n".join(lines)


def mean_mastery_by_topic(path: str | Path) -> dict[str, float]:
    """Mean batch-scored mastery per topic over users who practised it."""
    df = read_parquet(Path(path), ["topic_id", "mastery", "n_obs"])
    df = df[(df["n_obs"] > 0) & df["mastery"].notna()]
    return df.groupby("topic_id")["mastery"].mean().astype(float).to_dict()


def planner_ratios(facts: dict[str, Any]) -> dict[str, float]:
    """Planner policy -> its E_p over the best baseline's, from :func:`evaluation_summary`'s facts."""
    prefix = "planner_over_best_baseline."
    return {k[len(prefix):]: float(v) for k, v in facts.items() if k.startswith(prefix) and isinstance(v, int | float)}


def evaluation_summary(path: str | Path) -> dict[str, Any]:
    """The scalar facts beside the policy rows of an evaluation file (e.g. ``best_baseline_e_p``,
    ``planner_over_best_baseline.<planner policy>``, ``world``, ``learned_prerequisites.precision``),
    flattened."""
    from kt.train.tracking import flatten

    doc = _evaluation_doc(json.loads(Path(path).read_text()))
    if not isinstance(doc, dict):
        return {}
    flat = flatten({k: v for k, v in doc.items() if k not in ("results", "policies", "table")})
    return {k: v for k, v in flat.items() if isinstance(v, str | int | float | bool)}
