"""Policies judged in the simulator: simulated users follow each policy, we measure what they learnt.

Protocol (in the spirit of EduSim's KSS environment and the CSEAL/SRC evaluations):

* N users are drawn from those with a history; each gets a *goal* topic (one of their interest
  topics, else a random one, with at least ``min_goal_ancestors`` prerequisite ancestors and not
  yet mastered). Their *target topics* are the goal and all its ancestors in the true DAG.
* For each policy, a ``LearnerEnv.fork()`` of the same environment (identical latent states and
  random streams), and a fresh learner model built from the same histories.
* T steps; at step s every user gets one bundle from the policy at time
  ``t0 + s * step_gap``, consumes it (``LearnerEnv.consume``), and the events, labelled by the
  outcome rule, update the learner model (``observe_many``, e.g. the MasteryTracker).

Measures:

* learning effectiveness ``E_p = (E_end - E_start) / (E_sup - E_start)``, E = mean true
  mastery over the user's target topics, at ``t0`` and at ``t0 + T * step_gap`` (forgetting
  included); ``E_sup = 1.0``, the ceiling of the simulator's mastery scale (its learning rule
  approaches 1 asymptotically and nothing higher is attainable). Averaged over users.
* success rate: share of consumed items whose derived outcome is positive;
* coverage: distinct recommended items / catalog size;
* diversity: mean over bundles of 1 - mean pairwise item similarity (the bundle MMR features).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kt.planner.bundles import similarity_matrix
from kt.planner.path import Planner
from kt.planner.policies import Policy, Request
from kt.planner.prerequisites import PrerequisiteGraph

HOUR = 3600.0


@dataclass
class EvalConfig:
    users: int = 200
    steps: int = 20
    bundle_size: int = 5
    step_gap_hours: float = 24.0
    min_goal_ancestors: int = 2
    min_history: int = 5
    seed: int = 0


@dataclass
class PolicyResult:
    policy: str
    e_start: float
    e_end: float
    e_p: float
    e_p_std: float
    success_rate: float
    coverage: float
    diversity: float
    n_consumed: int
    seconds: float
    per_user_e_p: list[float] = field(default_factory=list, repr=False)

    def to_dict(self, with_users: bool = False) -> dict:
        d = asdict(self)
        if not with_users:
            d.pop("per_user_e_p")
        return d


class OracleLearner:
    """The simulator's true state as a :class:`~kt.planner.protocol.LearnerModel`: what the planner
    does with perfect knowledge tracing (an upper bound for any KT model).

    Mastery is reported on the tracker's scale: the true success probability on the topic's
    representative item (its primary-topic item of median difficulty), so the planner's
    thresholds mean the same thing as with :class:`kt.mastery.MasteryTracker`. Stages: ``new``
    before any practice, ``needs_review`` when latent mastery fell by more than ``review_margin``
    since the last practice, ``mastered`` at ``mastered`` or above, else ``learning``.
    ``progress``: as the tracker's (``MasteryConfig.progress_window``), from the mastery right
    after each practice it is told of (``observe_many``).
    """

    def __init__(self, env, mastered: float = 0.8, review_margin: float = 0.1, progress_window: int = 5) -> None:
        self.env = env
        self.mastered = mastered
        self.review_margin = review_margin
        self.progress_window = progress_window
        self._trail: dict[tuple[int, int], list[float]] = {}
        cat = env.catalog
        panel = []
        for k in range(env.n_topics):
            items = np.flatnonzero(cat.item_topic == k)
            panel.append(items[np.argsort(cat.difficulty[items])[len(items) // 2]] if len(items) else 0)
        from kt.sim.world import content_ids

        self.panel = content_ids(np.asarray(panel, np.int64), env.config.n_items)

    def topic_mastery(self, user_id: str, now=None) -> pd.DataFrame:
        u = self.env.user_index(user_id)
        latent = self.env.true_mastery(user_id, now)
        m = self.env.success_probability(user_id, self.panel, now)
        n = self.env.state.n_practice[u]
        stage = np.where(m >= self.mastered, "mastered", "learning").astype(object)
        stage[(self.env.state.m[u] - latent) > self.review_margin] = "needs_review"
        stage[n == 0] = "new"
        since = self.env.seconds(now, u) - self.env.state.last[u]
        conf = n / (n + 5.0) * np.exp2(-np.maximum(since, 0.0) / (7 * 24 * HOUR))  # as the tracker's
        w = self.progress_window
        trails = [self._trail.get((u, k), ()) for k in range(len(m))]
        progress = [tr[-1] - tr[-1 - w] if len(tr) > w else np.nan for tr in trails]
        return pd.DataFrame({"topic_id": self.env.topic_ids, "mastery": m, "confidence": conf, "n_obs": n,
                             "stage": stage, "last_practiced": self.env.state.last[u], "progress": progress})

    def observe_many(self, interactions: pd.DataFrame) -> None:
        """Record each practised topic's mastery after the practices (for ``progress``)."""
        for user, grp in interactions.groupby("user_id"):
            u = self.env.user_index(str(user))
            m = self.env.success_probability(str(user), self.panel)
            for topic, count in grp["topic_id"].astype(str).value_counts().items():
                k = self.env.topic_index(topic)
                trail = self._trail.setdefault((u, k), [])
                # the batch's practices were read before this call: spread the change since the
                # last known value evenly over them (the tracker has the exact value per practice)
                start = trail[-1] if trail else float(m[k])
                trail.extend(np.linspace(start, float(m[k]), int(count) + 1)[1:].tolist())
                del trail[: -(self.progress_window + 1)]

    def predict_success(self, user_id: str, content_ids) -> np.ndarray:
        return self.env.success_probability(user_id, list(content_ids))


class SimulatorGreedyPolicy:
    """A ceiling reference, not a baseline: each step, the one-topic bundle with the largest
    expected gain in mean true mastery over the target topics, computed from the simulator's own
    equations (``kt.sim.dynamics``: learning rate, ZPD bump, prerequisite gate, latent state).
    No KT model can know these; the gap between this and the planner reading true mastery
    (``OracleLearner``) is what better planning, rather than better knowledge tracing, could win.

    Per target topic, items are picked greedily (expected gain at the time the bundle will be
    read, the topic's mastery advanced by each pick's expected gain); the topic whose bundle
    gains most wins; items go easy to hard. Greedy and one topic at a time: a reference, not a
    proven upper bound. Needs :class:`OracleLearner` as its learner model (for the environment).

    ``band``: keep to items whose *true* success (before the bundle) falls in it, widened by
    ``widen_step`` per side (up to ``max_widen``) only for a topic with too few, as the planner
    widens its band: what a planner that keeps to the product's band could reach.
    """

    uses_learner = True

    def __init__(self, catalog, band: tuple[float, float] | None = None, widen_step: float = 0.05,
                 max_widen: float = 0.4) -> None:
        self.catalog = catalog
        self.band, self.widen_step, self.max_widen = band, widen_step, max_widen
        self.name = "ceiling: greedy on the simulator's true gain" + (
            f", true success in {band[0]:.2f}-{band[1]:.2f}" if band else "")

    def recommend(self, req: Request, learner: OracleLearner, rng) -> list[str]:
        from kt.planner.policies import target_items
        from kt.sim import dynamics as dyn

        env, cat = learner.env, self.catalog
        sim, cfg = env.catalog, env.config
        items = target_items(cat, req)
        if len(items) == 0:
            return []
        cids = cat.content_ids[items]
        ii = np.array([env.item_index(c) for c in cids], dtype=np.int64)
        u = env.user_index(req.user_id)
        at = max(float(env.state.clock[u]) if req.at is None else req.at, float(env.state.last[u].max()))
        m0 = env.state.mastery_at(np.array([u]), at, cfg)[0]  # forgetting up to when the bundle is read
        weight = np.zeros(len(m0))
        weight[[env.topic_index(t) for t in req.target_topics]] = 1.0
        best: tuple[float, list[int]] = (-1.0, [])
        for k in np.unique(sim.item_topic[ii]):
            sel = np.flatnonzero(sim.item_topic[ii] == k)
            k2, d = sim.item_topic2[ii[sel]], sim.difficulty[ii[sel]]
            second = np.maximum(k2, 0)
            pre = sim.prereq[k][sim.prereq[k] >= 0]
            m, picked, total = m0.copy(), [], 0.0
            avail = self._admitted(m0, k, d, pre, min(req.size, len(sel)), cfg)
            for _ in range(min(req.size, int(avail.sum()))):
                # recomputed per pick: an item's second topic may be a prerequisite of k
                r = dyn.readiness(m[pre][None], np.ones((1, len(pre)), bool), cfg) if len(pre) else np.ones(1)
                g = float(dyn.gate(r, cfg)[0])
                p = dyn.success_probability(m[k], d, g, cfg)
                gain = dyn.learn(m[k], d, g, p, cfg.eta, cfg) - m[k]  # expected gain: learn is linear in s
                gain2 = np.where(k2 >= 0, dyn.learn(m[second], d, g, p, cfg.eta_secondary, cfg) - m[second], 0.0)
                value = np.where(avail, gain * weight[k] + gain2 * weight[second], -np.inf)
                j = int(np.argmax(value))
                avail[j] = False
                picked.append(int(sel[j]))
                total += float(value[j])
                m[k] += gain[j]
                if k2[j] >= 0:
                    m[k2[j]] += gain2[j]
            if total > best[0]:
                best = (total, picked)
        # easy to hard, like the planner's bundles: measured better than the pick order (E_p 0.321
        # vs 0.315), as each item raises mastery toward the next, harder one's ZPD
        return cids[sorted(best[1], key=lambda j: sim.difficulty[ii[j]])].tolist()

    def _admitted(self, m0: np.ndarray, k: int, d: np.ndarray, pre: np.ndarray, need: int, cfg) -> np.ndarray:
        """(len(d),) bool: the topic's items the band admits (all without a band)."""
        from kt.sim import dynamics as dyn

        if self.band is None:
            return np.ones(len(d), bool)
        r = dyn.readiness(m0[pre][None], np.ones((1, len(pre)), bool), cfg) if len(pre) else np.ones(1)
        p = dyn.success_probability(m0[k], d, float(dyn.gate(r, cfg)[0]), cfg)
        lo, hi = self.band
        for widen in np.arange(0.0, self.max_widen + 1e-9, self.widen_step):
            inside = (p >= lo - widen) & (p <= hi + widen)
            if inside.sum() >= need:
                return inside
        return np.ones(len(d), bool)  # too few even widened: the whole topic, as without a band


@dataclass
class EvalSetup:
    """Users, their goals/targets/languages/histories: identical for every policy."""

    users: list[str]
    goals: dict[str, str]
    targets: dict[str, list[str]]
    languages: dict[str, list[str]]
    histories: dict[str, pd.DataFrame]
    interactions: pd.DataFrame  # the chosen users' labelled history (to seed learner models)


def make_setup(world, env, true_prereqs: PrerequisiteGraph, interactions: pd.DataFrame, config: EvalConfig) -> EvalSetup:
    """Draw users and goals. ``interactions``: the world's events through the outcome rule."""
    rng = np.random.default_rng([config.seed, 7])
    ev = world.events[["user_id", "content_id", "timestamp"]]
    counts = ev["user_id"].value_counts()
    eligible = sorted(counts[counts >= config.min_history].index.astype(str))
    users = sorted(rng.choice(eligible, size=min(config.users, len(eligible)), replace=False).tolist())
    langs = dict(zip(world.users["user_id"].astype(str), world.users["languages"].astype(str).str.split("|"), strict=True))
    deep = [t for t in true_prereqs.topics if len(true_prereqs.ancestors(t)) >= config.min_goal_ancestors]
    if not deep:
        raise ValueError(f"no topic has {config.min_goal_ancestors} prerequisite ancestors; lower min_goal_ancestors")
    topic_index = {t: i for i, t in enumerate(env.topic_ids)}
    inter_u = interactions[interactions["user_id"].astype(str).isin(users)]
    goals, targets, hists = {}, {}, {}
    by_user = dict(tuple(ev[ev["user_id"].astype(str).isin(users)].groupby("user_id")))
    for u in users:
        h = by_user[u][["content_id", "timestamp"]].sort_values("timestamp").reset_index(drop=True)
        hists[u] = h
        m = env.true_mastery(u)
        open_ = [t for t in deep if m[topic_index[t]] < 0.8]
        pool = open_ or deep
        seen = inter_u.loc[inter_u["user_id"] == u, "topic_id"].astype(str).value_counts()
        liked = [t for t in seen.index if t in pool]
        goal = liked[0] if liked else pool[int(rng.integers(len(pool)))]
        goals[u] = goal
        targets[u] = true_prereqs.topological({goal, *true_prereqs.ancestors(goal)})
    return EvalSetup(users, goals, targets, {u: langs.get(u, []) for u in users}, hists, inter_u)


def bundle_diversity(planner: Planner, bundles: list[list[str]]) -> float:
    cat, vals = planner.catalog, []
    for b in bundles:
        if len(b) < 2:
            continue
        idx = cat.index_of(b)
        sim = similarity_matrix(idx, cat, planner.graph, planner.config.sim_weights)
        n = len(idx)
        vals.append(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
    return float(np.mean(vals)) if vals else 0.0


def run_policy(
    policy: Policy,
    env,
    setup: EvalSetup,
    planner: Planner,
    items: pd.DataFrame,
    learner_factory: Callable[[object], object] | None,
    config: EvalConfig,
    rule=None,
) -> PolicyResult:
    """Run one policy on a fork of ``env``; ``learner_factory(env_fork)`` builds its learner model."""
    from kt.data.outcome import OutcomeRule, events_to_interactions

    rule = rule or OutcomeRule()
    t_start = time.perf_counter()
    env = env.fork()
    learner = learner_factory(env) if (learner_factory is not None and policy.uses_learner) else None
    rng = np.random.default_rng([config.seed, 11])
    gap = config.step_gap_hours * HOUR
    t0 = {u: float(env.state.clock[env.user_index(u)]) for u in setup.users}
    tix = {t: i for i, t in enumerate(env.topic_ids)}
    tgt = {u: np.array([tix[t] for t in setup.targets[u]]) for u in setup.users}
    e_start = {u: float(env.true_mastery(u, t0[u])[tgt[u]].mean()) for u in setup.users}
    hist = {u: setup.histories[u].copy() for u in setup.users}
    recommended: set[str] = set()
    bundles: list[list[str]] = []
    n_consumed = n_success = 0
    for s in range(1, config.steps + 1):
        step_events = []
        for u in setup.users:
            req = Request(u, hist[u], setup.languages[u], [setup.goals[u]], setup.targets[u], config.bundle_size,
                          at=t0[u] + s * gap)
            bundle = policy.recommend(req, learner, rng)
            if not bundle:
                continue
            events, _ = env.consume(u, bundle, now=t0[u] + s * gap)
            step_events.append(events)
            bundles.append(bundle)
            recommended.update(bundle)
            hist[u] = pd.concat([hist[u], events[["content_id", "timestamp"]]], ignore_index=True)
        if not step_events:
            continue
        events = pd.concat(step_events, ignore_index=True)
        inter, _ = events_to_interactions(events, items, rule)
        n_consumed += len(events)
        n_success += int((inter["outcome"] > 0).sum())
        if learner is not None and hasattr(learner, "observe_many"):
            learner.observe_many(inter[["user_id", "content_id", "topic_id", "outcome", "timestamp"]])
    ep, es, ee = [], [], []
    for u in setup.users:
        # 2 h after the last step's start, or when the user finished reading if a bundle ran longer
        t_end = max(t0[u] + config.steps * gap + 2 * HOUR, float(env.state.clock[env.user_index(u)]))
        e_end = float(env.true_mastery(u, t_end)[tgt[u]].mean())
        ep.append((e_end - e_start[u]) / max(1.0 - e_start[u], 1e-9))
        es.append(e_start[u])
        ee.append(e_end)
    return PolicyResult(
        policy=policy.name, e_start=float(np.mean(es)), e_end=float(np.mean(ee)), e_p=float(np.mean(ep)),
        e_p_std=float(np.std(ep) / np.sqrt(max(len(ep), 1))), success_rate=n_success / max(n_consumed, 1),
        coverage=len(recommended) / max(len(planner.catalog), 1), diversity=bundle_diversity(planner, bundles),
        n_consumed=n_consumed, seconds=time.perf_counter() - t_start, per_user_e_p=ep,
    )


def evaluate(
    policies: list[Policy], env, setup: EvalSetup, planner: Planner, items: pd.DataFrame,
    learner_factory: Callable[[object], object] | None, config: EvalConfig,
) -> list[PolicyResult]:
    """Every policy from the same starting state (``env.fork()``)."""
    return [run_policy(p, env, setup, planner, items, learner_factory, config) for p in policies]


def is_reference(policy: str) -> bool:
    """A ceiling reference (reads the simulator itself): neither a contender nor a baseline."""
    return policy.startswith("ceiling")


def is_baseline(policy: str) -> bool:
    """Baselines are what the planner must beat: neither the planner itself nor a ceiling."""
    return not policy.startswith("planner") and not is_reference(policy)


def best_baseline(results: list[PolicyResult]) -> float:
    return max((r.e_p for r in results if is_baseline(r.policy)), default=float("nan"))


def results_table(results: list[PolicyResult]) -> str:
    """Markdown table, best E_p first, with each policy's E_p relative to the best baseline."""
    base = best_baseline(results)
    lines = ["| policy | E_p | ± s.e. | E_start | E_end | success rate | coverage | diversity | x best baseline |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: -r.e_p):
        ratio = r.e_p / base if base and base > 0 else float("nan")
        lines.append(f"| {r.policy} | {r.e_p:.3f} | {r.e_p_std:.3f} | {r.e_start:.3f} | {r.e_end:.3f} | "
                     f"{r.success_rate:.3f} | {r.coverage:.4f} | {r.diversity:.3f} | {ratio:.2f} |")
    return "\n".join(lines)
