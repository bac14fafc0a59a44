"""Every explorer page under Streamlit's AppTest, on the fixture home (KT_HOME)."""

from __future__ import annotations

from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app" / "explorer.py"


def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    return at


def _page(name: str):
    at = _app()
    at.switch_page(f"views/{name}.py")
    return at.run()


def _kinds(node, out=None) -> list[str]:
    out = [] if out is None else out
    out.append(getattr(node, "type", ""))
    for child in getattr(node, "children", {}).values():
        _kinds(child, out)
    return out


def _ok(at, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]


def test_overview(app_env):
    _, facts = app_env
    at = _app()
    _ok(at, "Overview")
    m = {x.label: x.value for x in at.metric}
    assert m["Users"] == str(facts["n_users"]) and m["Items"] == str(facts["n_items"])
    assert m["Events"] == f"{facts['n_events']:,}" and m["Topics"] == str(facts["n_topics"])
    assert m["Registered model"] == "ktpath-kt" and m["Version"] == str(facts["version"])
    assert 0.0 < float(m["Test AUC"]) <= 1.0
    assert _kinds(at._tree).count("vega_lite_chart") == 2  # languages, kinds


def test_user_page(app_env):
    import pandas as pd

    home, facts = app_env
    ev = pd.read_parquet(home / "data" / "world" / "events")
    user = str(ev["user_id"].value_counts().sort_index().idxmax())
    at = _page("user")
    _ok(at, "User")
    assert len(at.selectbox(key="user_id").options) == 50  # one page, not every user
    at.text_input(key="user_query").input(user).run()
    _ok(at, "User")
    assert at.selectbox(key="user_id").value == user
    assert [s.value for s in at.subheader] == [f"Highlights of {user}", "Topic mastery over time", "Current stages",
                                               "Recommended learning path", "What if the user finished a bundle?"]
    stages = {x.label: int(x.value) for x in at.metric}
    assert set(stages) == {"new", "learning", "needs review", "mastered"} and sum(stages.values()) == facts["n_topics"]
    bundles = [e.label for e in at.expander]
    assert bundles and all(b.startswith("Bundle ") for b in bundles)
    assert any(m.value.startswith("**Why:**") for m in at.markdown)
    events = at.dataframe[0].value
    assert len(events) == int((ev["user_id"] == user).sum())
    whatif = at.dataframe[-1].value
    assert {"before", "after", "delta"} <= set(whatif.columns)
    assert _kinds(at._tree).count("vega_lite_chart") == 3  # daily events, heat map, what-if
    # the what-if follows the chosen bundle
    if len(bundles) > 1:
        at.selectbox(key="whatif_bundle").select_index(1).run()
        _ok(at, "User")
        assert at.dataframe[-1].value["in_bundle"].any()
    # the path request as kt recommend takes it: a goal, the languages, how many bundles of what size
    prereqs = pd.read_parquet(home / "data" / "world" / "prerequisites.parquet")
    goal = str(prereqs["topic_id"].value_counts().idxmax())
    lang = at.multiselect(key=f"path_langs_{user}").value[0]
    at.multiselect(key="path_goals").set_value([goal])
    at.multiselect(key=f"path_langs_{user}").set_value([lang])
    at.number_input(key="path_bundles").set_value(2)
    at.number_input(key="path_size").set_value(3).run()
    _ok(at, "User")
    bundles = [e.label for e in at.expander]
    assert 1 <= len(bundles) <= 2, bundles
    assert all(b.endswith(("(goal)", "(review)", "(prerequisite)")) for b in bundles), bundles
    shown = pd.concat([d.value for d in at.dataframe if "predicted_success" in d.value.columns])
    assert set(shown["language"]) == {lang} and len(shown) <= 2 * 3


def test_a_user_without_events_still_gets_a_starting_path(app_env):
    import pandas as pd

    home, facts = app_env
    ev = pd.read_parquet(home / "data" / "world" / "events")
    users = pd.read_parquet(home / "data" / "world" / "users.parquet")
    idle = sorted(set(users["user_id"].astype(str)) - set(ev["user_id"].astype(str)))
    assert idle  # the tiny world has users who never highlighted
    at = _page("user")
    at.text_input(key="user_query").input(idle[0]).run()
    at.selectbox(key="user_id").set_value(idle[0]).run()
    _ok(at, "User")
    assert "no events yet" in at.info[0].value
    stages = {x.label: int(x.value) for x in at.metric}
    assert stages["new"] == facts["n_topics"]  # every topic new
    bundles = [e.label for e in at.expander]
    assert bundles and all(b.startswith("Bundle ") for b in bundles)  # what kt recommend answers too


def test_user_search_without_match(app_env):
    at = _page("user")
    at.text_input(key="user_query").input("no-such-user").run()
    _ok(at, "User")
    assert "No user id contains" in at.warning[0].value


def test_topics_page(app_env):
    at = _page("topics")
    _ok(at, "Topics")
    graphs = at.get("graphviz_chart")
    assert len(graphs) == 1 and graphs[0].proto.spec.count("->") > 0
    assert not at.info  # batch mastery found
    assert _kinds(at._tree).count("vega_lite_chart") == 4  # stages, histogram, language, kind


def test_experiments_page(app_env):
    _, facts = app_env
    at = _page("experiments")
    _ok(at, "Experiments")
    assert f"version {facts['version']}" in at.success[0].value
    runs = at.dataframe[0].value
    assert len(runs) == 1 and runs["champion"].all() and runs["status"].iloc[0] == "FINISHED"
    assert "valid_auc" in at.multiselect(key="curve_keys").value
    table = at.dataframe[1].value
    assert "metrics.test_auc" in table.index
    assert _kinds(at._tree).count("vega_lite_chart") == 2  # learning curves, comparison


def test_planner_evaluation_page(app_env):
    _, facts = app_env
    at = _page("planner_eval")
    _ok(at, "Planner evaluation")
    m = {x.label: x.value for x in at.metric}
    assert m["Policies"] == str(len(facts["policies"]))
    assert m["planner / best baseline (E_p)"].endswith("x")
    assert sorted(at.dataframe[0].value["policy"]) == sorted(facts["policies"])
    assert _kinds(at._tree).count("vega_lite_chart") == 4  # E_p, success rate, coverage, diversity


@pytest.mark.parametrize("page", ["overview", "user", "topics", "experiments", "planner_eval"])
def test_pages_say_what_to_run_when_nothing_is_there(page, tmp_path, monkeypatch):
    import streamlit as st

    monkeypatch.setenv("KT_HOME", str(tmp_path))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = _page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert any("kt demo" in i.value for i in at.info)
    assert not (tmp_path / "mlruns").exists()  # browsing never creates an MLflow store
