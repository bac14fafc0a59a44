"""The planner: from a user's recent highlights and knowledge state to an ordered learning path.

``Planner.plan`` runs, per request:

1. seeds = the user's ``n_seeds`` most recent highlighted items, weighted 0.5 ** (age / half-life);
2. Pixie walks from the seeds (:mod:`kt.planner.pixie`) -> related items with visit counts;
3. topic mastery from the learner model -> target topics (:mod:`kt.planner.targets`): review,
   the ready fringe weighted by interests, and goal chains, in topological order;
4. per target, a candidate pool = walk items carrying the topic + a difficulty-stratified sample
   of the topic index in the user's languages + the newest items without folder edges (cold
   start), minus what the user already consumed; one ``predict_success`` call scores all pools;
5. per target, a bundle (:mod:`kt.planner.bundles`): difficulty band, MMR diversity, easy to hard.

The planner only needs a :class:`~kt.planner.protocol.LearnerModel`; topics and items are opaque
string ids, so any concept graph and item-to-concept mapping works.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kt.data.times import series_to_seconds, to_seconds
from kt.planner.bundles import Bundle, BundleItem, assemble_bundle, band_aim
from kt.planner.calibration import DifficultyAdjusted
from kt.planner.catalog import Catalog
from kt.planner.config import PlannerConfig
from kt.planner.graph import ItemFolderGraph
from kt.planner.pixie import WalkResult, pixie_walk
from kt.planner.prerequisites import PrerequisiteGraph, learn_prerequisites
from kt.planner.protocol import LearnerModel
from kt.planner.targets import (
    Target,
    TopicState,
    interest_weights,
    is_stalled,
    level_gap,
    select_targets,
    topic_states,
)

DAY = 86_400.0


@dataclass
class LearningPath:
    """Bundles in the order to study them, with what the plan was based on."""

    user_id: str
    bundles: list[Bundle] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    goal_topics: list[str] = field(default_factory=list)
    n_walk_candidates: int = 0
    walk_steps: int = 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["bundles"] = [b.to_dict() for b in self.bundles]
        return d

    @property
    def content_ids(self) -> list[str]:
        return [c for b in self.bundles for c in b.content_ids]


@dataclass
class _Request:
    """Per-request state shared by the steps of ``plan``."""

    consumed: np.ndarray  # catalog indices already consumed
    languages: np.ndarray  # language codes
    seeds: np.ndarray
    seed_weights: np.ndarray
    walk: WalkResult
    interests: dict[str, float]


class Planner:
    """Learning paths of curated bundles; see the module docstring."""

    def __init__(
        self,
        catalog: Catalog,
        graph: ItemFolderGraph,
        prerequisites: PrerequisiteGraph,
        config: PlannerConfig | None = None,
    ) -> None:
        self.catalog = catalog
        self.graph = graph
        self.prerequisites = prerequisites
        self.config = config or PlannerConfig()
        self.graph.grow(len(catalog))

    @classmethod
    def from_world(cls, world, config: PlannerConfig | None = None, interactions: pd.DataFrame | None = None) -> Planner:
        """From a loaded world (:func:`kt.data.io.load_world`). Uses the world's prerequisite edges,
        or learns them from ``interactions`` (the events through the outcome rule) when it has none."""
        catalog = Catalog.from_world(world)
        graph = ItemFolderGraph.from_world(world, catalog)
        topics = world.topics["topic_id"].astype(str).tolist()
        if len(world.prerequisites):
            prereqs = PrerequisiteGraph.from_frame(world.prerequisites, topics)
        else:
            if interactions is None:
                from kt.data.outcome import events_to_interactions

                interactions, _ = events_to_interactions(world.events, world.items)
            prereqs = learn_prerequisites(interactions, topics, topic_difficulty=catalog.topic_mean_difficulty())
        return cls(catalog, graph, prereqs, config)

    # ------------------------------------------------------------------ catalog updates
    def add_items(self, items: pd.DataFrame, folder_items: pd.DataFrame | None = None) -> None:
        """New items become recommendable at once (topic index); folder edges are optional."""
        self.catalog.add_items(items)
        self.graph.grow(len(self.catalog))
        if folder_items is not None and len(folder_items):
            self.graph.add_folder_items(folder_items, self.catalog)

    # ------------------------------------------------------------------ request parts
    def _request(self, user_id: str, history: pd.DataFrame | None, languages: Iterable[str] | None, now) -> _Request:
        cfg, cat = self.config, self.catalog
        if history is None or len(history) == 0:
            idx = np.zeros(0, np.int64)
            ts = np.zeros(0, np.float64)
        else:
            for col in ("content_id", "timestamp"):
                if col not in history.columns:
                    raise ValueError(f"history: missing column {col!r} (needs content_id, timestamp)")
            idx = cat.index_of(history["content_id"].astype(str).to_numpy())
            ts = series_to_seconds(history["timestamp"])
            known = idx >= 0
            idx, ts = idx[known], ts[known]
        consumed = np.unique(idx)
        if languages is not None:
            langs = cat.language_codes(languages)
        elif len(idx):
            counts = np.bincount(cat.language[idx], minlength=len(cat.languages))
            langs = np.flatnonzero(counts >= max(1, 0.1 * len(idx)))
        else:
            langs = np.arange(len(cat.languages))
        order = np.argsort(ts, kind="stable")[::-1][: cfg.n_seeds]
        seeds = idx[order]
        t_now = to_seconds(now) if now is not None else (ts.max() if len(ts) else 0.0)
        age_days = np.maximum(t_now - ts[order], 0.0) / DAY
        weights = 0.5 ** (age_days / cfg.recency_half_life_days)
        rng = np.random.default_rng([cfg.seed, zlib.crc32(str(user_id).encode())])
        walk = pixie_walk(self.graph, seeds, weights, cfg.pixie, rng, cat.language, langs)
        interests = interest_weights([cat.item_topics(int(i)) for i in seeds], weights, cat.topics.tokens)
        return _Request(consumed, langs, seeds, weights, walk, interests)

    def candidates(self, user_id: str, history: pd.DataFrame, languages: Iterable[str] | None = None) -> WalkResult:
        """The Pixie part alone: walk candidates for the user's recent highlights."""
        return self._request(user_id, history, languages, None).walk

    def topic_states(self, user_id: str, learner: LearnerModel, now=None) -> dict[str, TopicState]:
        """Topic states; with ``difficulty_slope`` > 0 also each topic's level (median item
        difficulty) and the user's ability on it, ``level + logit(mastery) / slope`` (Rasch)."""
        topics = list(dict.fromkeys([*self.prerequisites.topics, *self.catalog.topics.tokens]))
        states = topic_states(learner.topic_mastery(user_id, now=now), topics, self.config)
        slope = self.config.difficulty_slope
        if slope > 0:
            for t, st in states.items():
                k = self.catalog.topics.get(t)
                if k >= 0:
                    st.level = self.catalog.topic_median_difficulty(k)
                    m = min(max(st.mastery, 1e-3), 1 - 1e-3)
                    st.ability = st.level + float(np.log(m / (1 - m))) / slope
        return states

    def targets(
        self, user_id: str, learner: LearnerModel, interests: dict[str, float], limit: int,
        goal_topics: Iterable[str] | None = None, now=None,
    ) -> list[Target]:
        states = self.topic_states(user_id, learner, now)
        return select_targets(states, self.prerequisites, interests, self.config, limit, goal_topics)

    def _pool(self, topic_id: str, req: _Request, walk_pos: dict[int, np.ndarray]) -> np.ndarray:
        """Candidate items for one topic: walk hits + stratified topic-index sample + fresh items."""
        cfg, cat = self.config, self.catalog
        topic = cat.topics.get(topic_id)
        if topic < 0:
            return np.zeros(0, np.int64)
        parts = []
        if topic in walk_pos:
            parts.append(req.walk.items[walk_pos[topic]])
        indexed = cat.topic_items(topic, req.languages)
        # drop consumed (and, unless asked, secondary-topic) items before sampling, so the sample
        # stays full as the user works through a topic
        indexed = indexed[~np.isin(indexed, req.consumed)]
        if not cfg.include_secondary:
            indexed = indexed[cat.primary_topic[indexed] == topic]
        if len(indexed):
            if len(indexed) > cfg.topic_pool:
                pos = np.linspace(0, len(indexed) - 1, cfg.topic_pool).round().astype(np.int64)
                parts.append(indexed[pos])
            else:
                parts.append(indexed)
            cold = indexed[self.graph.item_degree[indexed] == 0]
            if len(cold) and cfg.fresh_pool > 0:
                parts.append(cold[np.argsort(-cat.created_at[cold], kind="stable")[: cfg.fresh_pool]])
        if not parts:
            return np.zeros(0, np.int64)
        pool = np.unique(np.concatenate(parts))
        keep = ~np.isin(pool, req.consumed)
        if not cfg.include_secondary:
            keep &= cat.primary_topic[pool] == topic
        if len(req.languages):
            keep &= np.isin(cat.language[pool], req.languages)
        return pool[keep]

    # ------------------------------------------------------------------ public
    def plan(
        self,
        user_id: str,
        learner: LearnerModel,
        history: pd.DataFrame | None,
        n_bundles: int = 3,
        bundle_size: int = 5,
        languages: Iterable[str] | None = None,
        goal_topics: Iterable[str] | None = None,
        now: pd.Timestamp | str | None = None,
    ) -> LearningPath:
        """A learning path of up to ``n_bundles`` bundles of ``bundle_size`` items (clipped to
        ``[min_bundle, max_bundle]``) for ``user_id``. ``history``: (content_id, timestamp) of what
        the user consumed; ``languages``: ISO codes (default: inferred from history); ``goal_topics``:
        topic ids to work towards."""
        cfg, cat = self.config, self.catalog
        goals = [str(g) for g in (goal_topics or [])]
        unknown = [g for g in goals if g not in self.prerequisites.parents and cat.topics.get(g) < 0]
        if unknown:
            raise ValueError(f"goal_topics: unknown topic id(s) {unknown}")
        if isinstance(languages, str):  # one code, not its characters
            languages = [languages]
        if languages is not None and not len(languages):  # nothing asked: infer, as with None
            languages = None
        if languages is not None and not len(cat.language_codes(languages)):
            # no item is in any of the languages asked for: nothing to recommend (an unknown code
            # must not read as "no language filter")
            return LearningPath(user_id=str(user_id), languages=[str(x) for x in languages], goal_topics=goals)
        if len(self.graph.item_degree) < len(cat):  # items added through Catalog.add_items directly
            self.graph.grow(len(cat))
        req = self._request(user_id, history, languages, now)
        if cfg.difficulty_slope > 0 and not isinstance(learner, DifficultyAdjusted):
            learner = DifficultyAdjusted(learner, cat, cfg.difficulty_slope)
        states = self.topic_states(user_id, learner, now)
        # every ranked target: a topic can come out empty (no unseen items in the user's languages,
        # or a parent area without items of its own) or blocked, and the next ones must then fill
        # the path; pools are built up front for the first few (with goals, the whole goal path: its
        # topics' unseen items run out one by one), lazily for the rest
        queue = select_targets(states, self.prerequisites, req.interests, cfg, len(states), goals)
        # when the goal chain has nothing left to offer (deferred targets included), fall back to
        # the ready fringe
        fallback = select_targets(states, self.prerequisites, req.interests, cfg, len(states)) if goals else []
        walk_pos = self._walk_positions(req.walk.items)
        upfront = queue if goals else queue[: n_bundles + 3]
        pools = {t.topic_id: self._pool(t.topic_id, req, walk_pos) for t in upfront}
        if not pools and fallback:
            pools = {t.topic_id: self._pool(t.topic_id, req, walk_pos) for t in fallback[: n_bundles + 3]}
        p_of = self._predict(user_id, learner, np.concatenate([*pools.values(), np.zeros(0, np.int64)]), {})
        path = LearningPath(
            user_id=str(user_id), languages=[cat.languages.tokens[c] for c in req.languages], goal_topics=goals,
            n_walk_candidates=len(req.walk.items), walk_steps=req.walk.steps,
        )
        taken: set[int] = set()
        done: set[str] = set()
        deferred: set[str] = set()
        substitutions = 0
        while (queue or fallback) and len(path.bundles) < n_bundles:
            if not queue:
                queue, fallback = fallback, []
            target = queue.pop(0)
            if target.topic_id in done:
                continue
            done.add(target.topic_id)
            pool = pools.get(target.topic_id)
            if pool is None:
                pool = pools[target.topic_id] = self._pool(target.topic_id, req, walk_pos)
                p_of = self._predict(user_id, learner, pool, p_of)
            pool = pool[~np.isin(pool, np.fromiter(taken, np.int64, len(taken)))]
            if len(pool) == 0:
                continue
            if len(pool) < cfg.min_bundle and target.topic_id not in deferred and queue:
                # a bundle is min_bundle..max_bundle items: full bundles from the other targets first,
                # this short one only if the path is still not full (better than no bundle at all)
                deferred.add(target.topic_id)
                done.discard(target.topic_id)
                queue.append(target)
                continue
            p = np.array([p_of[int(i)] for i in pool])
            # a topic whose prerequisite already has a bundle earlier in this path is a later step:
            # it is expected to look hard now, so neither swap nor defer it
            later_step = bool(self.prerequisites.ancestors(target.topic_id) & {b.topic_id for b in path.bundles})
            if later_step:
                pass
            elif np.nanmax(p, initial=0.0) < cfg.blocked_success and substitutions < cfg.max_substitutions:
                # even the easiest items look out of reach: strengthen the weakest prerequisite first
                sub = self._weakest_prerequisite(target, states, done, float(np.nanmax(p, initial=0.0)))
                if sub is not None:
                    substitutions += 1
                    queue.insert(0, sub)
                    continue
            p = np.nan_to_num(p, nan=0.0)
            lo, hi = cfg.band
            in_reach = np.count_nonzero((p >= lo - cfg.defer_widen) & (p <= hi + cfg.defer_widen))
            if in_reach < cfg.min_bundle and target.topic_id not in deferred and queue and not later_step:
                # nothing near the desirable difficulty here now: try the other targets first
                deferred.add(target.topic_id)
                done.discard(target.topic_id)
                queue.append(target)
                continue
            topic = cat.topics.get(target.topic_id)
            ws, _ = req.walk.lookup(pool)
            primary = (cat.primary_topic[pool] == topic).astype(np.float64)
            size = int(np.clip(bundle_size, cfg.min_bundle, cfg.max_bundle))
            n_review = min(cfg.review_slots, size - cfg.min_bundle) if target.source != "review" else 0
            reviews: list[tuple[int, float, Target]] = []
            if n_review > 0:  # review slots first; any left unfilled go back to the target topic
                reviews, p_of = self._review_items(user_id, learner, target, goals, states, req, walk_pos,
                                                   taken | set(pool.tolist()), n_review, p_of)
            chosen, pc, band = assemble_bundle(pool, p, ws, primary, size - len(reviews), cat, self.graph, cfg)
            bundle = Bundle(target.topic_id, cat.topic_name(target.topic_id), target.source, target.stage,
                            target.mastery, target.reason, band)
            picks = [(int(pool[j]), float(prob), target) for j, prob in zip(chosen, pc, strict=True)] + reviews
            taken.update(i for i, _, _ in picks)
            picks.sort(key=lambda x: -x[1])  # easy to hard
            _, visits = req.walk.lookup(np.fromiter((i for i, _, _ in picks), np.int64, len(picks)))
            bundle.items = [self._item(i, prob, t, int(v)) for (i, prob, t), v in zip(picks, visits, strict=True)]
            path.bundles.append(bundle)
        rank = self.prerequisites.rank()
        first = (lambda b: b.source != "review") if cfg.review_first else (lambda b: False)
        path.bundles.sort(key=lambda b: (first(b), rank.get(b.topic_id, -1)))
        return path

    def _walk_positions(self, items: np.ndarray) -> dict[int, np.ndarray]:
        """Topic -> positions in ``items`` of the walk items carrying it (from the topic CSR,
        without a Python loop over items)."""
        cat = self.catalog
        if len(items) == 0:
            return {}
        start, stop = cat.topic_ptr[items], cat.topic_ptr[items + 1]
        counts = stop - start
        pos = np.repeat(np.arange(len(items)), counts)  # walk position of each (item, topic) entry
        entry = np.arange(len(pos)) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(start, counts)
        topics = cat.topic_idx[entry]
        order = np.argsort(topics, kind="stable")  # positions stay ascending within a topic
        topics, pos = topics[order], pos[order]
        cuts = np.flatnonzero(np.diff(topics)) + 1
        return {int(t): p for t, p in zip(topics[np.r_[0, cuts]], np.split(pos, cuts), strict=True)}

    def _predict(self, user_id: str, learner: LearnerModel, items: np.ndarray, known: dict[int, float]) -> dict[int, float]:
        """Add the learner model's predicted success of ``items`` to ``known`` (one call)."""
        new = np.unique(items[~np.isin(items, np.fromiter(known, np.int64, len(known)))]) if len(items) else items
        if len(new):
            if isinstance(learner, DifficultyAdjusted):
                p = learner.predict_at(user_id, new)
            else:
                p = np.asarray(learner.predict_success(user_id, self.catalog.content_ids[new].tolist()), np.float64)
            known = {**known, **dict(zip(new.tolist(), p.tolist(), strict=True))}
        return known

    def _review_items(
        self, user_id: str, learner: LearnerModel, target: Target, goals: list[str], states: dict[str, TopicState],
        req: _Request, walk_pos: dict[int, np.ndarray], taken: set[int], n: int, p_of: dict[int, float],
    ) -> tuple[list[tuple[int, float, Target]], dict[int, float]]:
        """Interleaved spaced review: ``n`` items from practised topics with the lowest confidence,
        each the unseen item nearest the band's aim: prerequisite ancestors of the target, and, with
        goals, the other practised topics of the goal path (the goals and their ancestors, also
        those after the target: interleaving them measured +0.004 E_p over prerequisites only, 0.265
        against 0.261). Each item's reason says which of the two it is."""
        cfg, pre = self.config, self.prerequisites
        own = pre.ancestors(target.topic_id)
        related = set(own).union(*(pre.ancestors(g) | {g} for g in goals)) - {target.topic_id}
        practised = [t for t in related if t in states and states[t].stage != "new"
                     and states[t].mastery >= cfg.review_min_mastery]
        practised.sort(key=lambda t: (states[t].confidence, states[t].mastery, t))
        out: list[tuple[int, float, Target]] = []
        aim = band_aim(cfg.band, cfg.band_aim)
        for t in practised:
            if len(out) >= n:
                break
            pool = self._pool(t, req, walk_pos)
            pool = pool[~np.isin(pool, np.fromiter(taken, np.int64, len(taken)))]
            if len(pool) == 0:
                continue
            p_of = self._predict(user_id, learner, pool, p_of)
            p = np.nan_to_num(np.array([p_of[int(i)] for i in pool]), nan=0.0)
            j = int(np.argmin(np.abs(p - aim)))
            st = states[t]
            if t in own:
                why = f"spaced review of {t}, a prerequisite of {target.topic_id} (confidence {st.confidence:.2f})"
            else:  # not something the target builds on: say so, never "prerequisite"
                why = f"interleaved practice of {t}, on the path to {', '.join(goals)} (confidence {st.confidence:.2f})"
            out.append((int(pool[j]), float(p[j]), Target(t, "review", st.stage, st.mastery, 0.0, why)))
            taken = taken | {int(pool[j])}  # an item on two review topics is picked once
        return out, p_of

    def _weakest_prerequisite(self, target: Target, states: dict[str, TopicState], done: set[str], best_p: float) -> Target | None:
        # a stalled prerequisite is not worth another bundle now, however weak it looks
        parents = [p for p in self.prerequisites.parents.get(target.topic_id, [])
                   if p not in done and not (p in states and is_stalled(states[p], self.config))]
        if not parents:
            return None
        weakest = min(parents, key=lambda t: (states[t].mastery if t in states else 0.0, t))
        st = states.get(weakest, TopicState(self.config.unseen_mastery, "new"))
        gap = level_gap(target.topic_id, states, self.prerequisites)
        if st.mastery >= self.config.solid_mastery and gap <= self.config.ready_level_margin:
            return None  # prerequisites are solid: the items are just hard, keep the target
        why = f"strengthen prerequisite of {target.topic_id} (its items look out of reach: best predicted success {best_p:.2f})"
        return Target(weakest, "prerequisite", st.stage, st.mastery, target.score, why)

    def next_bundle(
        self,
        user_id: str,
        learner: LearnerModel,
        history: pd.DataFrame | None,
        bundle_size: int = 5,
        languages: Iterable[str] | None = None,
        goal_topics: Iterable[str] | None = None,
        now: pd.Timestamp | str | None = None,
    ) -> Bundle | None:
        """One recommendation step: the first bundle of the path (None when nothing is left)."""
        path = self.plan(user_id, learner, history, 1, bundle_size, languages, goal_topics, now)
        return path.bundles[0] if path.bundles else None

    def _item(self, i: int, p: float, target: Target, visits: int) -> BundleItem:
        cat = self.catalog
        if target.source == "review":
            source, how = "review", target.reason
        elif visits > 0:
            source, how = "pixie", f"pixie walk ({visits} visits)"
        elif self.graph.item_degree[i] == 0:
            source, how = "fresh", "topic index (new, not in any folder yet)"
        else:
            source, how = "topic_index", "topic index"
        topic = target.topic_id
        reason = f"{cat.topic_name(topic)} [{target.stage}]; predicted success {p:.2f}; found by {how}"
        return BundleItem(
            content_id=str(cat.content_ids[i]), topic_id=topic, stage=target.stage, predicted_success=p,
            source=source, visits=int(visits), language=cat.languages.tokens[int(cat.language[i])],
            kind=cat.kinds.tokens[int(cat.kind[i])], difficulty=float(cat.difficulty[i]), reason=reason,
        )
