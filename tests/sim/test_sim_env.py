"""LearnerEnv and the learner dynamics: learning, forgetting, signals, fork/reset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kt.sim import LearnerEnv, preset
from kt.sim import tables as tb
from kt.sim.env import read_true_mastery

USER = "u000"


@pytest.fixture()
def env():
    return LearnerEnv.from_config(preset("tiny"))


def _item_with_prerequisites(env: LearnerEnv, target: float = 0.65) -> tuple[str, int, list[int]]:
    """An item whose primary topic has prerequisites, with difficulty closest to ``target``."""
    cat = env.catalog
    best = None
    for k in range(env.n_topics):
        pre = [int(p) for p in cat.prereq[k] if p >= 0]
        items = np.flatnonzero(cat.item_topic == k)
        if pre and len(items):
            i = items[np.argmin(np.abs(cat.difficulty[items] - target))]
            if best is None or abs(cat.difficulty[i] - target) < abs(cat.difficulty[best[0]] - target):
                best = (int(i), k, pre)
    assert best is not None
    i, k, pre = best
    return f"c{i:03d}", k, pre


def _gain(env: LearnerEnv, content_id: str, k: int, mastery: np.ndarray) -> float:
    e = env.fork()
    e.set_mastery(USER, mastery, at=0.0)
    before = e.true_mastery(USER, at=0.0)[k]
    _, after = e.consume(USER, [content_id], now=0.0)
    return float(after[k] - before)


def test_right_difficulty_with_prerequisites_known_teaches_most(env):
    cid, k, pre = _item_with_prerequisites(env)
    d = float(env.difficulty([cid])[0])
    assert d > 0.5
    cfg = env.config
    ready = np.full(env.n_topics, 0.3)
    ready[pre] = 0.9
    right = ready.copy()
    right[k] = d - cfg.zpd_delta  # the item sits just above current mastery
    too_hard = ready.copy()
    too_hard[k] = max(cfg.floor, d - 0.6)
    unmet = right.copy()
    unmet[pre] = cfg.floor
    g_right, g_hard, g_unmet = _gain(env, cid, k, right), _gain(env, cid, k, too_hard), _gain(env, cid, k, unmet)
    assert g_right > 0.03
    assert g_right > 4 * g_hard
    assert g_right > 10 * g_unmet and g_unmet < 0.01


def test_mastery_decays_without_practice_but_not_below_the_floor(env):
    env.set_mastery(USER, np.full(env.n_topics, 0.8), at=0.0)
    day = 86_400.0
    m1, m30, m_far = (env.true_mastery(USER, at=t) for t in (1 * day, 30 * day, 1e5 * day))
    assert np.all(m1 < 0.8) and np.all(m30 < m1) and np.all(m_far <= m30)
    floor = env.state.floor[env.user_index(USER)]
    assert np.all(m_far >= floor - 1e-12) and np.all(floor >= env.config.floor)
    np.testing.assert_allclose(m_far, floor, atol=1e-6)


def test_practice_raises_the_floor_so_some_learning_persists(env):
    cid, k, pre = _item_with_prerequisites(env)
    m = np.full(env.n_topics, 0.9)
    m[k] = float(env.difficulty([cid])[0]) - env.config.zpd_delta
    env.set_mastery(USER, m, at=0.0)
    floor_before = env.state.floor[env.user_index(USER), k]
    for j in range(5):
        env.consume(USER, [cid], now=j * 3600.0)
    assert env.state.floor[env.user_index(USER), k] > floor_before


def _default_outcome(events: pd.DataFrame) -> np.ndarray:
    try:
        from kt.data.outcome import OutcomeRule
    except ImportError:  # the documented default rule, inline
        rf, dw, nh, q = (events[c].to_numpy(float) for c in ("read_fraction", "dwell_seconds", "n_highlights", "quiz_correct"))
        out = np.full(len(events), np.nan)
        out[(rf < 0.2) | (dw < 15)] = 0.0
        out[(rf >= 0.8) | ((nh >= 2) & (dw >= 60))] = 1.0
        out[~np.isnan(q)] = q[~np.isnan(q)]
        return out
    return OutcomeRule().label(events)


def test_signals_depend_on_mastery(env):
    rng = np.random.default_rng(0)
    items = [f"c{i:03d}" for i in rng.choice(env.config.n_items, 80, replace=False)]
    outcomes = {}
    for user, level in (("u001", 0.95), ("u002", 0.1)):
        env.set_mastery(user, np.full(env.n_topics, level), at=0.0)
        p = env.success_probability(user, items, at=0.0)
        events, _ = env.consume(user, items, now=0.0)
        outcomes[user] = (p.mean(), np.nanmean(_default_outcome(events)), events.read_fraction.mean())
    (p_hi, o_hi, rf_hi), (p_lo, o_lo, rf_lo) = outcomes["u001"], outcomes["u002"]
    assert p_hi > p_lo + 0.3
    assert o_hi > o_lo + 0.3
    assert rf_hi > rf_lo


def test_consume_emits_contract_events_and_fork_shares_the_future(env):
    items = ["c001", "c002", "c003"]
    fork = env.fork()
    base = env.true_mastery(USER, at=0.0).copy()
    ev1, m1 = env.consume(USER, items, now=0.0)
    assert list(ev1.columns) == tb.EVENTS.names
    assert ev1.event_id.is_unique and ev1.timestamp.is_monotonic_increasing and len(ev1) == 3
    assert (ev1.user_id == USER).all() and list(ev1.content_id) == items
    # the fork was untouched by the original's consume, and replays the same randomness
    np.testing.assert_array_equal(fork.true_mastery(USER, at=0.0), base)
    ev2, m2 = fork.consume(USER, items, now=0.0)
    pd.testing.assert_frame_equal(ev1, ev2)
    np.testing.assert_array_equal(m1, m2)
    # later calls continue event numbering; reset restores the starting state
    ev3, _ = env.consume(USER, items)
    assert not set(ev3.event_id) & set(ev1.event_id)
    assert ev3.timestamp.min() > ev1.timestamp.max()
    env.reset(USER)
    np.testing.assert_array_equal(env.true_mastery(USER, at=0.0), base)
    ev4, _ = env.consume(USER, items, now=0.0)
    pd.testing.assert_frame_equal(ev1, ev4)


def test_unknown_ids_raise_clear_errors(env):
    with pytest.raises(KeyError, match="user_id 'nobody'"):
        env.true_mastery("nobody")
    with pytest.raises(KeyError, match="content_id 'c999'"):
        env.success_probability(USER, ["c999"])
    with pytest.raises(ValueError, match="mastery must be"):
        env.set_mastery(USER, np.full(env.n_topics, 2.0))


def test_env_from_world_resumes_at_the_final_true_mastery(tiny_world):
    out, summary = tiny_world
    env = LearnerEnv.from_world(out)
    cfg = env.config
    assert env.n_users == cfg.n_users and len(env.prerequisites) == cfg.n_topics
    end = pd.Timestamp(cfg.start, tz="UTC") + pd.Timedelta(days=cfg.days)
    tm = pd.read_parquet(out / "true_mastery")
    final = tm[tm.timestamp == end].pivot(index="user_id", columns="topic_id", values="mastery")
    for user in ("u000", "u017", "u049"):
        np.testing.assert_allclose(env.true_mastery(user, at=end), final.loc[user].to_numpy(), rtol=1e-12)
    history = pd.read_parquet(out / "events")
    busy = history.user_id.value_counts().index[0]
    mine = read_true_mastery(out, [busy])
    assert set(mine.user_id) == {busy} and len(mine) > cfg.n_topics
    with pytest.raises(ValueError, match="before the user's latest practice"):
        env.true_mastery(busy, at=pd.Timestamp(cfg.start, tz="UTC"))
    new, _ = env.consume(busy, ["c010", "c020"])
    assert not set(new.event_id) & set(history.event_id)
    assert new.timestamp.min() > history[history.user_id == busy].timestamp.max()


def test_consume_before_the_latest_practice_changes_nothing(tiny_world):
    env = LearnerEnv.from_world(tiny_world[0])
    u = int(np.argmax(env.state.n_events))
    user = env.user_ids()[u]
    before = {name: getattr(env.state, name)[u].copy() for name in ("m", "last", "n_practice", "n_events", "clock")}
    calls = int(env._calls[u])
    with pytest.raises(ValueError, match="before the user's latest practice"):
        env.consume(user, ["c000"], now=float(env.state.last[u].max()) - 3 * 86_400)
    assert int(env._calls[u]) == calls  # forks would otherwise draw differently
    with pytest.raises(ValueError, match="success_probability"):  # it used to answer for a later time
        env.success_probability(user, ["c000"], at=float(env.state.last[u].max()) - 3 * 86_400)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(env.state, name)[u], value, err_msg=name)
