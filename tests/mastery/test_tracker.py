"""Online tracker: equals a full recompute, survives restarts, scores new items, handles versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kt.mastery import MasteryConfig, MasteryStateStore, MasteryTracker, StaleStateError
from kt.mastery.reference import forward_query, full_recompute, full_recompute_practiced
from kt.models.base import available_models


def _history(interactions: pd.DataFrame, n_users: int = 4, max_len: int = 40) -> pd.DataFrame:
    users = interactions["user_id"].drop_duplicates().head(n_users)
    df = interactions[interactions["user_id"].isin(users)].groupby("user_id").head(max_len)
    return df.rename(columns={"t": "timestamp"}).reset_index(drop=True)


@pytest.mark.parametrize("name", available_models())
def test_online_equals_full_recompute(name, vocabs, items, topics, interactions, make_model):
    model = make_model(name)
    # without the calibration offset, predictions are the model's own (the offset has its own test)
    tracker = MasteryTracker(model, *vocabs, items, topics=topics, config=MasteryConfig(offset_prior_sd=0))
    hist = _history(interactions)
    half = len(hist) // 2
    tracker.observe_many(hist.iloc[:half])  # batched, several users at once
    for r in hist.iloc[half:].itertuples():  # then one event at a time
        tracker.observe(r.user_id, r.content_id, r.outcome, r.timestamp, topic_id=r.topic_id)

    for user, h in hist.groupby("user_id"):
        it, co, pos = tracker.catalog.encode(h["content_id"].tolist(), h["topic_id"].tolist())
        resp = h["outcome"].to_numpy()
        online = tracker.topic_mastery(user)
        np.testing.assert_allclose(online["mastery"].to_numpy(), full_recompute(model, tracker.catalog, it, co, resp), atol=1e-5)
        assert online["n_obs"].sum() == len(h)
        # mastery right after each topic's last practice (drives "needs review")
        practiced = full_recompute_practiced(model, tracker.catalog, it, co, resp, pos)
        stored = tracker.store.load(user).meta.practiced_mastery
        last_of = pd.Series(practiced, index=h["topic_id"].to_numpy()).groupby(level=0).last()
        for topic, value in last_of.items():
            assert stored[topic] == pytest.approx(value, abs=1e-5)
        # predicted success on arbitrary items == forward over the history
        cids = items["content_id"].head(7).tolist()
        qi, qc, _ = tracker.catalog.encode(cids)
        np.testing.assert_allclose(tracker.predict_success(user, cids), forward_query(model, it, co, resp, qi, qc), atol=1e-5)


def test_batch_observe_equals_one_by_one(vocabs, items, topics, interactions, make_model):
    model = make_model("dkt")
    hist = _history(interactions, n_users=5)
    a = MasteryTracker(model, *vocabs, items, topics=topics)
    b = MasteryTracker(model, *vocabs, items, topics=topics)
    a.observe_many(hist)
    for r in hist.itertuples():
        b.observe(r.user_id, r.content_id, r.outcome, r.timestamp)
    assert a.users() == b.users() == sorted(hist["user_id"].unique())
    for u in a.users():
        pd.testing.assert_frame_equal(a.topic_mastery(u), b.topic_mastery(u), atol=1e-6)


def test_state_survives_restart(db_url, vocabs, items, topics, interactions, make_model):
    model = make_model("dkt")
    url = db_url
    hist = _history(interactions, n_users=3)
    first = MasteryTracker(model, *vocabs, items, state_store=MasteryStateStore(url), model_version="v1", topics=topics)
    first.observe_many(hist)
    before = {u: first.topic_mastery(u) for u in first.users()}
    first.store.close()

    again = MasteryTracker(model, *vocabs, items, state_store=MasteryStateStore(url), model_version="v1", topics=topics)
    assert again.users() == sorted(before)
    for u, df in before.items():
        pd.testing.assert_frame_equal(again.topic_mastery(u), df)
    # and it keeps learning from where it stopped
    r = hist.iloc[0]
    again.observe(r.user_id, r.content_id, 1, r.timestamp + 60)
    assert again.topic_mastery(r.user_id)["n_obs"].sum() == before[r.user_id]["n_obs"].sum() + 1


def test_new_items_scored_through_their_topic(vocabs, items, topics, make_model):
    item_vocab, concept_vocab = vocabs
    model = make_model("dkt")
    tracker = MasteryTracker(model, item_vocab, concept_vocab, items, topics=topics)
    tracker.catalog.add_items({"brand-new": topics[2]})
    tracker.observe("u", "brand-new", 1, "2026-01-05T10:00:00Z")
    tracker.observe("u", "never-seen", 0, "2026-01-05T10:05:00Z", topic_id=topics[3])
    p = tracker.predict_success("u", ["brand-new", "unknown-anywhere"])
    assert 0.0 < p[0] < 1.0 and np.isnan(p[1])
    tm = tracker.topic_mastery("u").set_index("topic_id")
    assert tm.loc[topics[2], "n_obs"] == 1 and tm.loc[topics[3], "n_obs"] == 1
    with pytest.raises(KeyError, match="unknown-anywhere"):
        tracker.observe("u", "unknown-anywhere", 1, "2026-01-05T10:06:00Z")


def test_items_added_while_the_item_lookup_is_built_are_not_lost(vocabs, items, topics, make_model, monkeypatch):
    """The tracker builds its content id lookup on first use; items added meanwhile (another
    request's catalog update) must be known to the next prediction."""
    import kt.mastery.catalog as mastery_catalog

    item_vocab, concept_vocab = vocabs
    tracker = MasteryTracker(make_model("dkt"), item_vocab, concept_vocab, items, topics=topics)
    catalog = tracker.catalog
    lookup = mastery_catalog._lookup
    raced = []

    def lookup_with_a_concurrent_add(vocab, tokens):
        if not raced:
            raced.append(1)
            catalog.add_items({"late-item": topics[1]})
        return lookup(vocab, tokens)

    monkeypatch.setattr(mastery_catalog, "_lookup", lookup_with_a_concurrent_add)
    assert catalog.encode_items(["late-item"])[0].tolist() == [False]  # built from the items before the add
    monkeypatch.setattr(mastery_catalog, "_lookup", lookup)
    known, _, concepts = catalog.encode_items(["late-item"])
    assert known.tolist() == [True] and concepts.tolist() == concept_vocab.encode([topics[1]]).tolist()
    assert 0.0 < tracker.predict_success("u", ["late-item"])[0] < 1.0


def test_new_model_version_needs_rebuild(tmp_path, vocabs, items, topics, interactions, make_model):
    model = make_model("dkt")
    store = MasteryStateStore(f"sqlite:///{tmp_path / 's.db'}")
    hist = _history(interactions, n_users=2)
    MasteryTracker(model, *vocabs, items, state_store=store, model_version="v1", topics=topics).observe_many(hist)
    newer = make_model("dkt", seed=1)  # the new champion: other weights
    champion = MasteryTracker(newer, *vocabs, items, state_store=store, model_version="v2", topics=topics)
    user = hist["user_id"].iloc[0]
    assert champion.stale_users() == sorted(hist["user_id"].unique())
    with pytest.raises(StaleStateError, match="rebuild"):
        champion.topic_mastery(user)
    champion.rebuild(user, hist)
    fresh = MasteryTracker(newer, *vocabs, items, model_version="v2", topics=topics)
    fresh.observe_many(hist[hist["user_id"] == user])
    pd.testing.assert_frame_equal(champion.topic_mastery(user), fresh.topic_mastery(user))
    assert user not in champion.stale_users()


def test_topic_mastery_columns_and_unknown_user(vocabs, items, topics, make_model):
    tracker = MasteryTracker(make_model("dkt"), *vocabs, items, config=MasteryConfig(), topics=topics)
    tm = tracker.topic_mastery("nobody")
    assert list(tm.columns) == ["topic_id", "mastery", "confidence", "n_obs", "stage", "last_practiced", "progress"]
    assert len(tm) == len(topics) and (tm["stage"] == "new").all() and (tm["confidence"] == 0).all()
    assert tm["progress"].isna().all()
    assert tracker.users() == []


def test_a_bad_history_leaves_the_stale_state_in_place(tmp_path, vocabs, items, topics, interactions, make_model):
    store = MasteryStateStore(f"sqlite:///{tmp_path / 's.db'}")
    hist = _history(interactions, n_users=1)
    user = hist["user_id"].iloc[0]
    MasteryTracker(make_model("dkt"), *vocabs, items, state_store=store, model_version="v1", topics=topics).observe_many(hist)
    champion = MasteryTracker(make_model("dkt", seed=1), *vocabs, items, state_store=store, model_version="v2", topics=topics)
    with pytest.raises(ValueError, match="lack column"):
        champion.rebuild(user, hist.rename(columns={"timestamp": "t"}))
    with pytest.raises(KeyError, match="c-unknown"):
        champion.rebuild(user, pd.concat([hist, hist.tail(1).assign(content_id="c-unknown", topic_id=None)]))
    assert store.load(user) is not None  # the old state is still there, still stale
    with pytest.raises(StaleStateError):
        champion.topic_mastery(user)


def test_bad_outcomes_and_times_are_refused_by_row(vocabs, items, topics, interactions, make_model):
    tracker = MasteryTracker(make_model("dkt"), *vocabs, items, topics=topics)
    hist = _history(interactions, n_users=1).head(5)
    with pytest.raises(ValueError, match="row 2: outcome must be 0 or 1"):
        tracker.observe_many(hist.assign(outcome=[1, 0, np.nan, 1, 1]))
    with pytest.raises(ValueError, match="row 1: timestamp missing"):
        tracker.observe_many(hist.assign(timestamp=[hist["timestamp"].iloc[0], None, *hist["timestamp"].iloc[2:]]))
    user, cid = hist["user_id"].iloc[0], hist["content_id"].iloc[0]
    with pytest.raises(ValueError, match="timestamp missing"):
        tracker.observe(user, cid, 1, None)
    with pytest.raises(ValueError, match="outcome must be 0 or 1"):
        tracker.observe(user, cid, 5, "2026-01-20T00:00:00Z")
    assert tracker.users() == []  # nothing half-applied


def test_a_late_event_does_not_move_last_practiced_back(vocabs, items, topics, make_model):
    tracker = MasteryTracker(make_model("dkt"), *vocabs, items, topics=topics)
    cid = items["content_id"].iloc[0]
    topic = items["topics"].iloc[0].split("|")[0]
    for day in ("2026-01-20", "2026-01-21", "2026-01-22", "2026-01-01"):  # the last one arrives late
        tracker.observe("late", cid, 1, f"{day}T00:00:00Z")
    row = tracker.topic_mastery("late").set_index("topic_id").loc[topic]
    assert row["n_obs"] == 4 and row["last_practiced"] == pd.Timestamp("2026-01-22", tz="UTC")


def test_topic_lists_with_spaces_are_read_as_the_contract_reads_them(vocabs, items, topics, interactions, make_model):
    spaced = items.assign(topics=items["topics"].str.replace("|", " | ", regex=False))
    assert (spaced["topics"] != items["topics"]).any()  # some items have a second topic
    hist = _history(interactions, n_users=2)
    plain = MasteryTracker(make_model("dkt"), *vocabs, items, topics=topics)
    other = MasteryTracker(make_model("dkt"), *vocabs, spaced, topics=topics)
    no_topic = hist.drop(columns=["topic_id"])
    plain.observe_many(no_topic)
    other.observe_many(no_topic.assign(topic_id=pd.array([None] * len(no_topic), dtype="string")))  # pd.NA: own topic
    for user in hist["user_id"].unique():
        pd.testing.assert_frame_equal(plain.topic_mastery(user), other.topic_mastery(user))


@pytest.mark.parametrize("name", available_models())
def test_progress_and_offset_follow_each_practice(name, world, vocabs, topics, interactions, make_model):
    """``progress`` is the change of a topic's mastery over its last ``progress_window`` practices,
    and the calibration offset is the sequential update over the residuals of the model's own
    prediction for each item (just before it), spread by the item's catalog difficulty when the
    model is flat across a topic's items (the planner spreads only those)."""
    from kt.mastery.tracker import update_offset

    items = pd.read_parquet(world / "items.parquet", columns=["content_id", "topics", "difficulty"])
    cfg = MasteryConfig(progress_window=3, offset_prior_sd=0.8, offset_drift=0.7, offset_difficulty_slope=6.0)
    model = make_model(name)
    from kt.mastery.catalog import TopicCatalog

    # akt read item by item (untrained, its items do not differ yet): the offset's unspread branch
    catalog = TopicCatalog.build(model, *vocabs, items, topics, item_aware=True if name == "akt" else None)
    tracker = MasteryTracker(model, *vocabs, catalog, topics=topics, config=cfg)
    assert catalog.item_aware == (name == "akt") and catalog.item_difficulty
    hist = _history(interactions, n_users=2, max_len=30)
    tracker.observe_many(hist)
    cat = tracker.catalog
    prim = items["topics"].str.split("|").str[0]
    diff = dict(zip(items["content_id"], items["difficulty"], strict=True))
    median = items.assign(t=prim).groupby("t")["difficulty"].median()
    for user, h in hist.groupby("user_id"):
        it, co, pos = cat.encode(h["content_id"].tolist(), h["topic_id"].tolist())
        resp = h["outcome"].to_numpy()
        practiced = full_recompute_practiced(model, cat, it, co, resp, pos)
        offsets: dict[str, list[float]] = {}
        trails: dict[str, list[float]] = {}
        for t, (cid, tid) in enumerate(zip(h["content_id"], h["topic_id"], strict=True)):
            p = forward_query(model, it[:t], co[:t], resp[:t], it[t : t + 1], co[t : t + 1])[0]
            logit = np.log(p / (1 - p)) + (0.0 if cat.item_aware else 6.0 * (median[tid] - diff[cid]))
            offsets[tid] = update_offset(offsets.get(tid), logit, int(resp[t]), 0.8, 0.7)
            trails.setdefault(tid, []).append(practiced[t])
        frame = tracker.topic_mastery(user).set_index("topic_id")
        stored = tracker.store.load(user).meta.offset
        for tid, trail in trails.items():
            want = trail[-1] - trail[-4] if len(trail) > 3 else np.nan
            np.testing.assert_allclose(frame.loc[tid, "progress"], want, atol=1e-5)
            assert stored[tid][0] == pytest.approx(offsets[tid][0], abs=1e-4)
        assert frame["progress"].notna().any()  # the history is long enough for some topics
        # predictions carry the offset of the item's topic
        cids = h["content_id"].head(6).tolist()
        qi, qc, _ = cat.encode(cids)
        raw = forward_query(model, it, co, resp, qi, qc)
        shift = np.array([offsets.get(cat.item_topic[c], [0.0])[0] for c in cids])
        want = 1 / (1 + np.exp(-(np.log(raw / (1 - raw)) + shift)))
        np.testing.assert_allclose(tracker.predict_success(user, cids), want, atol=1e-5)


def test_the_offset_follows_outcomes_and_recent_ones_weigh_more():
    from kt.mastery.tracker import update_offset

    def run(outcomes, drift, logit=0.0):
        o = None
        for y in outcomes:
            o = update_offset(o, logit, y, 1.0, drift)
        return o[0]

    assert run([1] * 6, 0.0) > 0.5 and run([0] * 6, 0.0) < -0.5
    # a learner who failed, then succeeds as often: without drift the average (~0), with drift
    # the recent successes win
    late = [0] * 10 + [1] * 10
    assert abs(run(late, 0.0)) < 0.3 < run(late, 1.0)
    # without drift it is (close to) the MAP of a N(0, 1)-prior logistic regression on the offset
    ys = np.array([1, 0, 1, 1, 1, 0, 1, 1], dtype=float)
    grid = np.linspace(-3, 3, 60001)
    logpost = (ys.sum() * grid - len(ys) * np.log1p(np.exp(grid))) - grid**2 / 2
    assert run(ys.astype(int), 0.0) == pytest.approx(grid[np.argmax(logpost)], abs=0.1)


def test_the_offset_stays_bounded_on_long_confident_histories():
    """Hundreds of confident predictions, then surprises: the offset neither diverges nor
    overflows (a first version stepped by (y - p) / precision at the old mean and did both)."""
    from kt.mastery.tracker import update_offset

    rng = np.random.default_rng(0)
    o = None
    for _ in range(2000):  # a calibrated model at 0.97
        o = update_offset(o, 3.48, int(rng.random() < 0.97), 0.5, 1.0)
        assert abs(o[0]) <= 4.0 and o[1] > 0
    o = None
    for _ in range(30):
        o = update_offset(o, 3.0, 1, 0.5, 1.0)
    after_failure = update_offset(o, 3.0, 0, 0.5, 1.0)[0]
    assert -4.0 <= after_failure < o[0]
    assert abs(after_failure - o[0]) < 6.0
    # however extreme the logit, no overflow: a certain failure moves the offset to the MAP, whose
    # pull is bounded by the prior (precision 1 / (0.5^2 + 1) = 0.8: the offset -1 / 0.8)
    assert update_offset(None, 800.0, 0, 0.5, 1.0)[0] == pytest.approx(-1.25)
