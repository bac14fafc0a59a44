"""Topics: the prerequisite graph, mastery across users, content by language and difficulty."""

import altair as alt
import services
import streamlit as st

from kt import insights
from kt.insights import MissingPiece

st.title("Topics")

try:
    world = services.current_world()
except MissingPiece as exc:
    services.missing(exc)
    st.stop()
s = services.settings()
names = world.topic_names()
scores = insights.find_mastery_scores(s)

st.subheader("Prerequisite graph")
mean = services.mean_mastery(str(scores), scores.stat().st_mtime) if scores is not None else None
st.caption("Arrows go from a prerequisite to the topic that needs it"
           + ("; green = higher mean mastery across users." if mean else "."))
st.graphviz_chart(insights.prerequisite_dot(world.topics, world.prerequisites, mean))

st.subheader("Mastery across users")
if scores is None:
    st.info(f"No batch-scored mastery under `{s.data_dir}`: {services.DEMO_HINT}, "
            f"or `kt mastery score --out {s.data_dir / 'mastery.parquet'}`.")
else:
    hist, stages = services.mastery_distribution(str(scores), scores.stat().st_mtime)
    st.caption(f"From `{scores}` (topics users practised).")
    stages = stages.assign(topic=stages["topic_id"].map(names).fillna(stages["topic_id"]))
    st.altair_chart(
        alt.Chart(stages).mark_bar().encode(
            x=alt.X("users:Q", stack="normalize", title="share of users"), y=alt.Y("topic:N", title=None),
            color=alt.Color("stage:N", sort=["new", "learning", "needs_review", "mastered"]),
            tooltip=["topic", "stage", "users"]),
        width="stretch",
    )
    hist = hist.assign(topic=hist["topic_id"].map(names).fillna(hist["topic_id"]))
    st.altair_chart(
        alt.Chart(hist).mark_rect().encode(
            x=alt.X("bin:O", title="mastery"), y=alt.Y("topic:N", title=None),
            color=alt.Color("users:Q", scale=alt.Scale(scheme="blues")), tooltip=["topic", "bin", "users"]),
        width="stretch",
    )

st.subheader("Content by language and difficulty")
content = world.content_breakdown()
left, right = st.columns(2)
with left:
    st.altair_chart(
        alt.Chart(content).mark_bar().encode(x="language:N", y=alt.Y("sum(items):Q", title="items"),
                                             color="difficulty:O", tooltip=["language", "difficulty", "sum(items)"]),
        width="stretch",
    )
with right:
    st.altair_chart(
        alt.Chart(content).mark_bar().encode(x="kind:N", y=alt.Y("sum(items):Q", title="items"),
                                             color="difficulty:O", tooltip=["kind", "difficulty", "sum(items)"]),
        width="stretch",
    )
