"""Which topics a user should work on next.

Three sources, all read from the learner model's topic mastery and the prerequisite DAG:

* **review**: topics the learner model marks ``needs_review`` (mastery decayed since practice);
* **ready**: the "ready to learn" fringe, i.e. topics not yet mastered whose prerequisites are all
  mastered or nearly (``>= ready_threshold``): Vygotsky's zone of proximal development read off
  the knowledge structure, as in CSEAL (Liu et al., KDD 2019) which restricts candidate concepts to
  those whose prerequisites are learnt;
* **goal**: requested goal topics pull in their unmastered prerequisite ancestors, in
  topological order, so a path walks up to the goal.

Ready and review topics are weighted by the user's interests (topics of their recent highlights,
decayed by recency) so the fringe is explored where the user already reads.

A *stalled* topic (its mastery rose by less than ``min_progress`` over the learner model's last
practices of it) goes after every other target: like ZPDES (Clement, Roy, Oudeyer & Lopes 2015,
"Multi-armed bandits for intelligent tutoring systems"), practice goes where it is paying off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kt.planner.config import PlannerConfig
from kt.planner.prerequisites import PrerequisiteGraph


@dataclass
class TopicState:
    """``ability`` and ``level`` (optional) are on the catalog's difficulty scale: the difficulty
    the user handles at the topic's typical success, and the topic's median item difficulty."""

    mastery: float
    stage: str
    confidence: float = 0.0
    ability: float | None = None
    level: float | None = None
    n_obs: int | None = None  # observations behind the mastery (None: the model does not say)
    progress: float | None = None  # mastery gained over the model's last practices (None: not known)


@dataclass
class Target:
    """A topic chosen for a bundle. ``source``: review | ready | goal; ``reason``: one line."""

    topic_id: str
    source: str
    stage: str
    mastery: float
    score: float
    reason: str


def topic_states(frame: pd.DataFrame | None, topics: Iterable[str], config: PlannerConfig) -> dict[str, TopicState]:
    """Learner-model frame -> topic -> state; topics it leaves out are ``new`` at ``unseen_mastery``."""
    out = {str(t): TopicState(config.unseen_mastery, "new") for t in topics}
    if frame is not None and len(frame):
        n = len(frame)
        mastery = frame["mastery"].to_numpy(np.float64, na_value=np.nan)
        mastery = np.where(np.isfinite(mastery), mastery, config.unseen_mastery).tolist()
        conf = frame["confidence"].to_numpy(np.float64, na_value=np.nan) if "confidence" in frame.columns else np.zeros(n)
        conf = np.where(np.isfinite(conf), conf, 0.0).tolist()
        n_obs, progress = _optional(frame, "n_obs", int), _optional(frame, "progress", float)
        for tid, m, stage, c, k, g in zip(frame["topic_id"].astype(str).tolist(), mastery, frame["stage"].astype(str).tolist(),
                                          conf, n_obs, progress, strict=True):
            out[tid] = TopicState(m, stage, c, n_obs=k, progress=g)
    return out


def _optional(frame: pd.DataFrame, column: str, kind: type) -> list:
    """A column a learner model may leave out, as Python values (None where missing or NaN)."""
    if column not in frame.columns:
        return [None] * len(frame)
    vals = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    return [kind(x) if np.isfinite(x) else None for x in vals.tolist()]


def is_stalled(state: TopicState, config: PlannerConfig) -> bool:
    """Its mastery rose by less than ``min_progress`` over the model's last practices of it."""
    return config.min_progress is not None and state.progress is not None and state.progress < config.min_progress


def is_mastered(state: TopicState, config: PlannerConfig) -> bool:
    """Mastered by the model's stage or by mastery, either backed by ``ready_min_obs`` observations
    (a model's "mastered" after fewer is its prior guess too, not evidence)."""
    guessed = config.ready_min_obs > 0 and state.n_obs is not None and state.n_obs < config.ready_min_obs
    if guessed:
        return False
    return state.stage == "mastered" or (state.stage != "needs_review" and state.mastery >= config.mastered_threshold)


def readiness(topic: str, states: dict[str, TopicState], prereqs: PrerequisiteGraph, min_obs: int = 0) -> float:
    """Lowest mastery among the topic's prerequisites (1 when it has none). With ``min_obs`` > 0 a
    prerequisite backed by fewer observations counts as 0: a model's prior guess for a topic the
    user never practised (a population average, often high for topics with easy items) is no
    evidence that the prerequisite is in place."""
    parents = prereqs.parents.get(topic, [])
    return min((_evidenced_mastery(states.get(p), min_obs) for p in parents), default=1.0)


def _evidenced_mastery(st: TopicState | None, min_obs: int) -> float:
    if st is None:
        return 0.0
    if min_obs > 0 and st.n_obs is not None and st.n_obs < min_obs:
        return 0.0
    return st.mastery


def level_gap(topic: str, states: dict[str, TopicState], prereqs: PrerequisiteGraph) -> float:
    """How far the weakest prerequisite's ability falls short of the topic's level (difficulty
    units; <= 0 when every prerequisite reaches it, or when abilities are unknown)."""
    st = states.get(topic)
    if st is None or st.level is None:
        return 0.0
    gaps = [st.level - states[p].ability for p in prereqs.parents.get(topic, [])
            if p in states and states[p].ability is not None]
    return max(gaps, default=0.0)


def goal_chain(goals: Iterable[str], states: dict[str, TopicState], prereqs: PrerequisiteGraph, config: PlannerConfig) -> list[str]:
    """Goals plus their unmastered prerequisite ancestors, prerequisites first."""
    need: set[str] = set()
    for g in goals:
        for t in {g, *prereqs.ancestors(g)}:
            st = states.get(t)
            if st is None or not is_mastered(st, config):
                need.add(t)
    return prereqs.topological(need)


def select_targets(
    states: dict[str, TopicState],
    prereqs: PrerequisiteGraph,
    interests: dict[str, float],
    config: PlannerConfig,
    limit: int,
    goal_topics: Iterable[str] | None = None,
) -> list[Target]:
    """Up to ``limit`` targets, most important first (see :func:`path_order` for study order).

    Without goals: reviews and the ready fringe by score. With goals: the goal chain's ready
    topics and reviews by score, then the chain's not-yet-ready topics (prerequisites first),
    then the goal's already mastered ancestors (consolidation), weakest first. Stalled topics
    (:func:`is_stalled`) follow all the others, in the same order."""
    ranked = _rank_targets(states, prereqs, interests, config, goal_topics)
    stalled = [x for x in ranked if x.topic_id in states and is_stalled(states[x.topic_id], config)]
    if stalled:
        ids = {x.topic_id for x in stalled}
        ranked = [x for x in ranked if x.topic_id not in ids] + stalled
    return ranked[:limit]


def _rank_targets(
    states: dict[str, TopicState],
    prereqs: PrerequisiteGraph,
    interests: dict[str, float],
    config: PlannerConfig,
    goal_topics: Iterable[str] | None,
) -> list[Target]:
    """Every target of :func:`select_targets`, stalled ones in their place."""
    limit = len(states) + len(prereqs.topics)
    goals = [str(g) for g in (goal_topics or [])]
    interests = propagate_interests(interests, prereqs, config.interest_decay)
    chain = set(goal_chain(goals, states, prereqs, config)) if goals else set()
    scored: list[Target] = []
    for t, st in states.items():
        interest = interests.get(t, 0.0)
        if st.stage == "needs_review":
            on_path = t in chain or any(t in prereqs.ancestors(g) for g in goals)
            if goals and not on_path:
                continue  # with a goal, a bundle off the goal's path teaches nothing toward it
            scored.append(Target(t, "review", st.stage, st.mastery,
                                 config.w_review + config.w_interest * interest + (config.w_goal if on_path else 0.0),
                                 f"review: mastery decayed to {st.mastery:.2f}"))
            continue
        if is_mastered(st, config):
            continue
        r = readiness(t, states, prereqs, config.ready_min_obs)
        if r < config.ready_threshold or level_gap(t, states, prereqs) > config.ready_level_margin:
            continue
        # headroom (1 - mastery): the simulator-agnostic proxy of how much a bundle can still add
        score = config.w_readiness * r + config.w_interest * interest + config.w_headroom * (1.0 - st.mastery)
        if t in chain:
            why = "goal" if t in goals else f"prerequisite of goal {', '.join(g for g in goals if t in prereqs.ancestors(g))}"
            scored.append(Target(t, "goal", st.stage, st.mastery, score + config.w_goal, why))
        else:
            why = "ready: prerequisites mastered" if prereqs.parents.get(t) else "ready: no prerequisites"
            scored.append(Target(t, "ready", st.stage, st.mastery, score, why))
    scored.sort(key=lambda x: (-x.score, x.topic_id))
    if goals:
        # with a goal, only the goal chain (and reviews of decayed topics) is worth a bundle;
        # chain topics not ready yet follow the ready ones, prerequisites first
        scored = [x for x in scored if x.source in ("goal", "review")]
        picked = scored[:limit]
        done = {x.topic_id for x in picked}
        for t in prereqs.topological(chain):
            if len(picked) >= limit:
                break
            if t not in done:
                st = states.get(t, TopicState(config.unseen_mastery, "new"))
                why = "goal" if t in goals else "prerequisite of goal (after its own prerequisites)"
                picked.append(Target(t, "goal", st.stage, st.mastery, 0.0, why))
                done.add(t)
        # then consolidate the goal and its mastered ancestors, weakest first (more headroom): more
        # practice on the goal's path beats drifting off it
        solid = sorted({a for g in goals for a in prereqs.ancestors(g) | {g}} - done - chain,
                       key=lambda t: (states.get(t, TopicState(0.0, "new")).mastery, t))
        for t in solid:
            if len(picked) >= limit:
                break
            st = states.get(t, TopicState(config.unseen_mastery, "new"))
            picked.append(Target(t, "goal", st.stage, st.mastery, 0.0, "consolidate a prerequisite of the goal"))
    else:
        picked = scored[:limit]
    return picked


def path_order(targets: list[Target], prereqs: PrerequisiteGraph, review_first: bool = True) -> list[Target]:
    """Targets in study order: reviews first (when ``review_first``), then topological, so no topic
    comes before one of its prerequisites."""
    rank = prereqs.rank()
    return sorted(targets, key=lambda x: ((x.source != "review") if review_first else False, rank.get(x.topic_id, -1)))


def propagate_interests(interests: dict[str, float], prereqs: PrerequisiteGraph, decay: float) -> dict[str, float]:
    """A prerequisite inherits ``decay`` times the interest of the topics it unlocks, so the ready
    ancestors of what the user reads rank high even when the topic itself is not ready."""
    out = dict(interests)
    for t in reversed(prereqs.topological(prereqs.topics)):
        v = out.get(t, 0.0) * decay
        if v > 0:
            for p in prereqs.parents.get(t, []):
                out[p] = max(out.get(p, 0.0), v)
    return out


def interest_weights(topic_lists: list[np.ndarray], weights: np.ndarray, topic_ids: list[str]) -> dict[str, float]:
    """Recency-weighted topic frequencies of the user's recent items, scaled to max 1."""
    acc: dict[str, float] = {}
    for ts, w in zip(topic_lists, weights, strict=True):
        for j, t in enumerate(ts):
            key = topic_ids[int(t)]
            acc[key] = acc.get(key, 0.0) + float(w) * (1.0 if j == 0 else 0.5)
    top = max(acc.values(), default=0.0)
    return {k: v / top for k, v in acc.items()} if top > 0 else {}
