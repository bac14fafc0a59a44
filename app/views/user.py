"""User: find a user, their highlight timeline, mastery over time, stages, path and a what-if."""

import altair as alt
import pandas as pd
import services
import streamlit as st

from kt.insights import MissingPiece

PAGE_SIZE = 50
MAX_EVENTS_SHOWN = 500

st.title("User")

try:
    world = services.current_world()
except MissingPiece as exc:
    services.missing(exc)
    st.stop()
world_dir = str(world.world_dir)

# ------------------------------------------------------------------ find a user (never all ids in a widget)
c1, c2 = st.columns([3, 1])
linked = st.query_params.get("user", "")  # deep link: ?user=<id>
query = c1.text_input("Search user id", value=linked, key="user_query", placeholder="part of an id, e.g. u0001")
found = services.search_users(world_dir, query, 0, PAGE_SIZE)
page = c2.number_input(f"Page (of {found.n_pages})", min_value=1, max_value=found.n_pages, value=1, key="user_page")
found = services.search_users(world_dir, query, int(page) - 1, PAGE_SIZE)
if not found.user_ids:
    st.warning(f"No user id contains {query!r}.")
    st.stop()
user_id = st.selectbox(f"User ({found.total:,} match)", found.user_ids, key="user_id",
                       index=found.user_ids.index(linked) if linked in found.user_ids else 0)

# ------------------------------------------------------------------ highlight timeline
timeline = world.highlight_timeline(user_id, services.settings().outcome_rule())
langs = ", ".join(world.user_languages(user_id)) or "?"
st.subheader(f"Highlights of {user_id}")
st.caption(f"{len(timeline):,} events; languages: {langs}")
if timeline.empty:
    # a new user still gets mastery (all topics new) and a starting path below: the case a PM most
    # wants to see, and what `kt recommend` and the API answer for them
    st.info("This user has no events yet: every topic is new, and the path below is where they would start.")
else:
    outcome = timeline["outcome"].map({1.0: "understood", 0.0: "not understood"}).fillna("ambiguous")
    daily = (timeline.assign(day=timeline["timestamp"].dt.floor("D"), outcome=outcome)
             .groupby(["day", "outcome"]).size().rename("events").reset_index())
    st.altair_chart(
        alt.Chart(daily).mark_bar().encode(x=alt.X("yearmonthdate(day):O", title="day"), y="events:Q",
                                           color=alt.Color("outcome:N", scale=alt.Scale(
                                               domain=["understood", "not understood", "ambiguous"],
                                               range=["#2e7d32", "#c62828", "#9e9e9e"])),
                                           tooltip=["day:T", "outcome", "events"]),
        width="stretch",
    )
    shown = timeline.tail(MAX_EVENTS_SHOWN).iloc[::-1]
    st.dataframe(shown[["timestamp", "title", "topic", "kind", "language", "difficulty", "read_fraction",
                        "dwell_seconds", "n_highlights", "quiz_correct", "outcome", "folder_id"]],
                 hide_index=True, height=260)
    if len(timeline) > MAX_EVENTS_SHOWN:
        st.caption(f"latest {MAX_EVENTS_SHOWN} of {len(timeline):,} events shown")

# ------------------------------------------------------------------ mastery (needs the champion)
try:
    served = services.current_served()
except MissingPiece as exc:
    services.missing(exc)
    st.stop()
names = world.topic_names()
with st.sidebar:
    max_steps = st.slider("Heat map: steps shown", 20, 300, 120, step=10)
    max_topics = st.slider("Heat map: topics shown", 3, 30, 12)
now, heat = services.user_mastery(world_dir, user_id, served.version, max_steps, max_topics)

st.subheader("Topic mastery over time")
st.caption("Each step replays one more interaction through the champion "
           f"(version {served.version}); the most practised topics are shown.")
if heat.empty:
    st.info("No interaction of this user has a usable outcome yet.")
else:
    heat = heat.assign(topic=heat["topic_id"].map(names).fillna(heat["topic_id"]))
    st.altair_chart(
        alt.Chart(heat).mark_rect().encode(
            x=alt.X("step:O", title="interaction", axis=alt.Axis(labelOverlap=True)),
            y=alt.Y("topic:N", title=None),
            color=alt.Color("mastery:Q", scale=alt.Scale(domain=[0, 1], scheme="greens")),
            tooltip=["step", "timestamp:T", "topic", alt.Tooltip("mastery:Q", format=".2f"), "practised", "outcome"],
        ),
        width="stretch",
    )

st.subheader("Current stages")
stage_counts = now["stage"].value_counts()
cols = st.columns(4)
for col, stage in zip(cols, ["new", "learning", "needs_review", "mastered"], strict=True):
    col.metric(stage.replace("_", " "), int(stage_counts.get(stage, 0)))
table = now.assign(topic=now["topic_id"].map(names).fillna(now["topic_id"]))
table = table.sort_values(["n_obs", "topic_id"], ascending=[False, True])
st.dataframe(table[["topic", "topic_id", "stage", "mastery", "confidence", "n_obs", "last_practiced"]],
             hide_index=True, height=260)

# ------------------------------------------------------------------ learning path
st.subheader("Recommended learning path")
# the same request `kt recommend` and GET /v1/users/{id}/path take: goals, languages, bundles, size
catalog_langs = sorted(world.items["language"].astype(str).unique())
own_langs = [x for x in world.user_languages(user_id) if x in catalog_langs]
c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
goals = c1.multiselect("Goal topics", sorted(names), format_func=lambda t: f"{names[t]} ({t})", key="path_goals",
                       placeholder="none: the user's ready fringe and reviews")
langs = c2.multiselect("Languages", catalog_langs, default=own_langs, key=f"path_langs_{user_id}",
                       placeholder="from what the user reads")
n_bundles = c3.number_input("Bundles", min_value=1, max_value=10, value=3, key="path_bundles")
size = c4.number_input("Items per bundle", min_value=3, max_value=10, value=5, key="path_size")
path, items = services.user_path(world_dir, user_id, served.version, int(n_bundles), int(size), tuple(goals),
                                 tuple(langs))
if not path["bundles"]:
    st.info("The planner found nothing to recommend for this user"
            + (f" in {', '.join(langs)}." if langs else "."))
    st.stop()
for i, b in enumerate(path["bundles"], start=1):
    with st.expander(f"Bundle {i}: {b['topic_name']} [{b['stage']}] ({b['source']})", expanded=i == 1):
        st.markdown(f"**Why:** {b['reason']}")
        st.dataframe(items.loc[items["bundle"] == i, ["order", "content_id", "predicted_success", "difficulty",
                                                       "kind", "language", "source", "reason"]], hide_index=True)

# ------------------------------------------------------------------ what-if
st.subheader("What if the user finished a bundle?")
labels = [f"{i}: {b['topic_name']}" for i, b in enumerate(path["bundles"], start=1)]
pick = st.selectbox("Bundle", labels, key="whatif_bundle")
chosen = path["bundles"][labels.index(pick)]
delta = services.what_if(world_dir, user_id, served.version, tuple(it["content_id"] for it in chosen["items"]))
delta = delta.assign(topic=delta["topic_id"].map(names).fillna(delta["topic_id"]))
st.caption("A copy of the user's state absorbs the bundle's items as understood; "
           "predicted mastery per topic before and after (largest changes shown).")
top = delta.reindex(delta["delta"].abs().sort_values(ascending=False).index).head(15)
long = pd.concat([top.assign(when="before", value=top["before"]), top.assign(when="after", value=top["after"])])
st.altair_chart(
    alt.Chart(long).mark_bar().encode(
        x=alt.X("value:Q", title="mastery", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("topic:N", sort=top["topic"].tolist(), title=None),
        yOffset="when:N", color=alt.Color("when:N", sort=["before", "after"]),
        tooltip=["topic", "when", alt.Tooltip("value:Q", format=".3f")],
    ),
    width="stretch",
)
st.dataframe(top[["topic", "topic_id", "before", "after", "delta", "in_bundle"]], hide_index=True)
