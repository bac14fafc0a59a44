"""Data access for the explorer: calls ``kt.*`` and caches; no computation of its own.

Heavy objects (the world index, the champion's tracker, the planner) are built once per
process with ``st.cache_resource`` and shared by every session; per-user views are cached
with ``st.cache_data`` keyed by user and champion version. A missing piece of the embedded
default raises :class:`kt.insights.MissingPiece` whose message names the command to run;
pages show it with :func:`missing`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import streamlit as st

from kt import insights
from kt.config import Settings
from kt.insights import MissingPiece

DEMO_HINT = "run `kt demo` (or set KT_HOME to a directory where it ran)"


def settings() -> Settings:
    return Settings.from_env()


def missing(exc: Exception) -> None:
    """Show a missing piece as a clear message instead of a traceback."""
    st.info(f"{exc}", icon=":material/info:")


# ----------------------------------------------------------------------------- world
def _stamp(world_dir: str) -> float:
    """Changes when the world is regenerated (``kt demo`` / ``kt sim`` rewrite items.parquet)."""
    p = Path(world_dir) / "items.parquet"
    return p.stat().st_mtime if p.exists() else 0.0


@st.cache_resource(show_spinner="Opening the world…", max_entries=2)
def _world(world_dir: str, stamp: float) -> insights.WorldIndex:
    return insights.WorldIndex(world_dir)


def world(world_dir: str) -> insights.WorldIndex:
    return _world(world_dir, _stamp(world_dir))


def current_world() -> insights.WorldIndex:
    return world(str(settings().world_dir))


def search_users(world_dir: str, query: str, page: int, page_size: int):
    return _search_users(world_dir, _stamp(world_dir), query, page, page_size)


@st.cache_data(show_spinner=False, max_entries=256)
def _search_users(world_dir: str, stamp: float, query: str, page: int, page_size: int) -> insights.UserPage:
    return world(world_dir).search_users(query, page, page_size)


# ----------------------------------------------------------------------------- models
@st.cache_data(ttl=30, show_spinner=False)
def champion(tracking_uri: str, registered_model: str) -> insights.ChampionInfo | None:
    """The champion (re-read every 30 s, so a promotion shows up without a restart)."""
    s = settings().with_overrides(mlflow_tracking_uri=tracking_uri, registered_model=registered_model)
    return insights.champion_info(s)


def current_champion() -> insights.ChampionInfo | None:
    s = settings()
    return champion(s.mlflow_tracking_uri, s.registered_model)


@dataclass
class Served:
    """The champion's tracker (in-memory state store: the explorer never writes the API's
    states) and a lock, since Streamlit sessions run in threads."""

    version: int
    tracker: object  # kt.mastery.MasteryTracker
    lock: threading.Lock
    ready: set[str] = field(default_factory=set)  # users whose state holds their whole history


@st.cache_resource(show_spinner="Loading the champion model…", max_entries=2)
def served(world_dir: str, tracking_uri: str, registered_model: str, version: int, stamp: float) -> Served:
    from kt.mastery.tracker import MasteryTracker
    from kt.models.checkpoint import OutcomeRuleMismatch, check_outcome_rule
    from kt.train.tracking import load_model_uri

    s = settings().with_overrides(mlflow_tracking_uri=tracking_uri, registered_model=registered_model)
    loaded = load_model_uri(s, f"models:/{registered_model}/{version}")
    try:
        check_outcome_rule(loaded, s.outcome_rule())
    except OutcomeRuleMismatch as exc:
        raise MissingPiece(f"champion {registered_model} version {version}: {exc}") from None
    w = world(world_dir)
    tracker = MasteryTracker.from_loaded(loaded, w.table("items", ["content_id", "topics", "difficulty"]), model_version=str(version),
                                         topics=w.topics["topic_id"].astype(str).tolist())  # fmt: skip
    if not (tracker.catalog.concept_idx > 0).any():
        raise MissingPiece(
            f"champion {registered_model} version {version} (trained on {loaded.meta.get('data', '?')!r}) knows none "
            f"of this world's topics; promote a model trained on the world: `kt train --data sim` then "
            f"`kt promote --best-by test_auc --data sim` (or run `kt demo`)")  # fmt: skip
    return Served(version, tracker, threading.Lock())


def current_served() -> Served:
    """The champion's tracker; raises MissingPiece when there is no world or no champion."""
    s = settings()
    champ = current_champion()
    if champ is None:
        raise MissingPiece(f"no '{s.registered_model}@champion' in {s.mlflow_tracking_uri}; run `kt demo` "
                           "(or `kt train` then `kt promote`)")  # fmt: skip
    return served(str(s.world_dir), s.mlflow_tracking_uri, s.registered_model, champ.version, _stamp(str(s.world_dir)))


def planner(world_dir: str):
    return _planner(world_dir, _stamp(world_dir))


@st.cache_resource(show_spinner="Building the planner…", max_entries=2)
def _planner(world_dir: str, stamp: float):
    from kt.planner import Planner

    # the same construction as `kt recommend` (prerequisites learned when the world has none)
    return Planner.from_world(world(world_dir).validated())


# ----------------------------------------------------------------------------- per-user views
def _rebuilt(sv: Served, world_dir: str, user_id: str) -> pd.DataFrame:
    """The user's interactions, their tracker state built from them once (call under the lock):
    world files do not change while the app runs."""
    inter = world(world_dir).user_interactions(user_id, settings().outcome_rule())
    if user_id not in sv.ready:
        sv.tracker.rebuild(user_id, inter[["user_id", "content_id", "topic_id", "outcome", "timestamp"]])
        sv.ready.add(user_id)
    return inter


def user_mastery(world_dir: str, user_id: str, version: int, max_steps: int, max_topics: int):
    return _user_mastery(world_dir, _stamp(world_dir), user_id, version, max_steps, max_topics)


@st.cache_data(show_spinner="Tracing mastery…", max_entries=64)
def _user_mastery(world_dir: str, stamp: float, user_id: str, version: int, max_steps: int, max_topics: int):
    """(current topic mastery with stages, mastery timeline)."""
    sv = current_served()
    with sv.lock:
        inter = _rebuilt(sv, world_dir, user_id)
        now = sv.tracker.topic_mastery(user_id)
        timeline = insights.mastery_timeline(sv.tracker, inter, max_steps=max_steps, max_topics=max_topics)
    return now, timeline


def user_path(world_dir: str, user_id: str, version: int, n_bundles: int, bundle_size: int,
              goals: tuple[str, ...] = (), languages: tuple[str, ...] = ()):
    """``languages`` empty: inferred from what the user reads, as the planner does (the page preselects
    the user's own)."""
    return _user_path(world_dir, _stamp(world_dir), user_id, version, n_bundles, bundle_size, goals, languages)


@st.cache_data(show_spinner="Planning a learning path…", max_entries=64)
def _user_path(world_dir: str, stamp: float, user_id: str, version: int, n_bundles: int, bundle_size: int,
               goals: tuple[str, ...], languages: tuple[str, ...]):
    """(LearningPath as a dict, its item table)."""
    sv = current_served()
    w = world(world_dir)
    history = w.user_events(user_id)[["content_id", "timestamp"]]
    with sv.lock:
        _rebuilt(sv, world_dir, user_id)
        path = planner(world_dir).plan(user_id, sv.tracker, history if len(history) else None, n_bundles=n_bundles,
                                       bundle_size=bundle_size, languages=list(languages) or None,
                                       goal_topics=list(goals) or None)  # fmt: skip
    return path.to_dict(), insights.path_table(path)


def what_if(world_dir: str, user_id: str, version: int, content_ids: tuple[str, ...]):
    return _what_if(world_dir, _stamp(world_dir), user_id, version, content_ids)


@st.cache_data(show_spinner="Simulating the bundle…", max_entries=64)
def _what_if(world_dir: str, stamp: float, user_id: str, version: int, content_ids: tuple[str, ...]) -> pd.DataFrame:
    sv = current_served()
    with sv.lock:
        _rebuilt(sv, world_dir, user_id)
        return insights.what_if_bundle(sv.tracker, user_id, list(content_ids))


# ----------------------------------------------------------------------------- batch scores, runs, planner eval
@st.cache_data(show_spinner="Reading batch mastery…", max_entries=4)
def mastery_distribution(path: str, mtime: float):
    return insights.mastery_distribution(path)


@st.cache_data(ttl=30, show_spinner="Reading MLflow runs…")
def runs(tracking_uri: str) -> pd.DataFrame:
    return insights.runs_table(settings().with_overrides(mlflow_tracking_uri=tracking_uri))


@st.cache_data(ttl=30, show_spinner=False, max_entries=64)
def history(tracking_uri: str, run_id: str) -> pd.DataFrame:
    return insights.metric_history(settings().with_overrides(mlflow_tracking_uri=tracking_uri), run_id)


@st.cache_data(show_spinner=False, max_entries=16)
def policies(path: str, mtime: float) -> pd.DataFrame:
    return insights.policy_comparison(path)


@st.cache_data(show_spinner=False, max_entries=4)
def mean_mastery(path: str, mtime: float) -> dict[str, float]:
    return insights.mean_mastery_by_topic(path)


@st.cache_data(show_spinner=False, max_entries=16)
def evaluation_summary(path: str, mtime: float) -> dict:
    return insights.evaluation_summary(path)
