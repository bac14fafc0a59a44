"""Catalog, topic index and cold start: new items are recommendable at once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planner_testlib import busiest_user, history_of

from kt.planner import Catalog, CatalogError, ItemFolderGraph, Planner, PlannerConfig


def test_topic_index_is_sorted_by_difficulty_and_filtered_by_language(tiny):
    cat = tiny["catalog"]
    t = int(cat.primary_topic[0])
    en = cat.language_codes(["en"])
    items = cat.topic_items(t, en)
    assert len(items) and (cat.language[items] == en[0]).all()
    assert np.all(np.diff(cat.difficulty[items]) >= 0)
    assert all(t in cat.item_topics(int(i)) for i in items)


def test_bad_items_get_a_clear_error():
    items = pd.DataFrame({"content_id": ["a", "a"], "language": ["en", "en"], "topics": ["x", "x"]})
    with pytest.raises(CatalogError, match="row 1: field 'content_id'"):
        Catalog.from_frames(items)
    items = pd.DataFrame({"content_id": ["a", "b"], "language": ["en", "en"], "topics": ["x", ""]})
    with pytest.raises(CatalogError, match="row 1: field 'topics'"):
        Catalog.from_frames(items)
    items = pd.DataFrame({"content_id": ["a"], "language": ["en"], "topics": ["x"], "difficulty": [1.5]})
    with pytest.raises(CatalogError, match="row 0: field 'difficulty'"):
        Catalog.from_frames(items)


def test_new_item_without_folder_edges_is_recommended_at_once(tiny, oracle):
    world = tiny["world"]
    catalog = Catalog.from_world(world)  # private copies: this test adds items
    graph = ItemFolderGraph.from_world(world, catalog)
    planner = Planner(catalog, graph, tiny["prereqs"], PlannerConfig())
    user = busiest_user(world)
    hist = history_of(world, user)
    path = planner.plan(user, oracle, hist, n_bundles=1, bundle_size=3, languages=["en"])
    assert path.bundles
    topic = path.bundles[0].topic_id
    # a brand-new item on that topic, at the difficulty of the bundle's items, in no folder
    d = float(np.median([i.difficulty for i in path.bundles[0].items]))
    n_before = len(catalog)
    new = pd.DataFrame({"content_id": ["fresh-1"], "title": ["new"], "url": ["u"], "language": ["en"],
                        "topics": [topic], "difficulty": [d], "kind": ["article"],
                        "created_at": [pd.Timestamp("2026-03-01", tz="UTC")]})
    planner.add_items(new)
    assert len(catalog) == n_before + 1 and graph.item_degree[n_before] == 0
    assert n_before in catalog.topic_items(catalog.topics.get(topic), catalog.language_codes(["en"]))
    # the oracle knows only simulator items: score the new one like its nearest-difficulty twin
    sim_items = tiny["catalog"]
    twin_of = {}

    class WithNewItem:
        def topic_mastery(self, user_id, now=None):
            return oracle.topic_mastery(user_id, now)

        def predict_success(self, user_id, content_ids):
            ids = list(content_ids)
            if "fresh-1" in ids:
                same = sim_items.topic_items(sim_items.topics.get(topic))
                twin_of["fresh-1"] = sim_items.content_ids[same[np.argmin(np.abs(sim_items.difficulty[same] - d))]]
            return oracle.predict_success(user_id, [twin_of.get(c, c) for c in ids])

    path = planner.plan(user, WithNewItem(), hist, n_bundles=1, bundle_size=10, languages=["en"])
    items = {i.content_id: i for b in path.bundles for i in b.items}
    assert "fresh-1" in items and items["fresh-1"].source == "fresh"
    assert "not in any folder" in items["fresh-1"].reason


def test_edited_items_move_in_the_topic_index():
    items = pd.DataFrame({"content_id": ["a", "b", "c", "d"], "language": ["en", "en", "ko", "en"],
                          "topics": ["x", "x|y", "y", "y"], "difficulty": [0.1, 0.5, 0.3, 0.9]})
    cat = Catalog.from_frames(items)
    x, y, z = cat.topics.get("x"), cat.topics.get("y"), cat.topics.add("z")
    en, ko = cat.language_codes(["en"]), cat.language_codes(["ko"])
    assert cat.topic_median_difficulty(x) == pytest.approx(0.3)
    cat.add_items(pd.DataFrame({"content_id": ["e"], "language": ["en"], "topics": ["x"], "difficulty": [0.2]}))
    edit = pd.DataFrame({"content_id": ["b", "a"], "language": ["ko", "en"], "topics": ["z", "y|x"],
                         "difficulty": [0.05, 0.7]})
    assert cat.update_items(edit).tolist() == [1, 0]
    assert [cat.content_ids[i] for i in cat.topic_items(x, en)] == ["e", "a"]  # a is now a secondary x item
    assert [cat.content_ids[i] for i in cat.topic_items(y, en)] == ["a", "d"]  # b left y, sorted by difficulty
    assert [cat.content_ids[i] for i in cat.topic_items(z, ko)] == ["b"] and len(cat.topic_items(z, en)) == 0
    assert cat.content_ids[cat.topic_items(y, ko)].tolist() == ["c"]
    assert [cat.topics.tokens[t] for t in cat.primary_topic] == ["y", "z", "y", "y", "x"]
    assert cat.item_topics(0).tolist() == [y, x] and cat.difficulty[1] == pytest.approx(0.05)
    assert cat.topic_median_difficulty(x) == pytest.approx(0.2)  # only e has x as primary now
    with pytest.raises(CatalogError, match="row 1: field 'content_id' 'nope' is not in the catalog"):
        cat.update_items(pd.DataFrame({"content_id": ["a", "nope"], "topics": ["x", "x"]}))


def test_created_at_is_unix_seconds_whatever_the_datetime_resolution():
    # pandas 3 parses to microseconds; an int64 cast then is not nanoseconds (items came out 1000x too old)
    stamp = pd.Timestamp("2026-01-20T10:15:00Z")
    items = pd.DataFrame({"content_id": ["a", "b", "c"], "topics": ["x", "x", "x"],
                          "created_at": ["2026-01-20T10:15:00Z", stamp.isoformat(), "2026-01-20T10:15:01.9Z"]})
    from_text = Catalog.from_frames(items)
    from_stamps = Catalog.from_frames(items.assign(created_at=pd.to_datetime(items["created_at"], utc=True, format="ISO8601")))
    for cat in (from_text, from_stamps):
        assert cat.created_at.tolist() == [1768904100, 1768904100, 1768904101]
