"""Overview: data volumes, languages and kinds, the champion model and its metrics."""

import altair as alt
import services
import streamlit as st

from kt.insights import MissingPiece

st.title("Overview")

try:
    world = services.current_world()
except MissingPiece as exc:
    services.missing(exc)
    st.stop()

counts = world.counts()
cols = st.columns(6)
for col, (label, key) in zip(cols, [("Users", "users"), ("Items", "items"), ("Folders", "folders"),
                                     ("Events", "events"), ("Topics", "topics"), ("Prerequisites", "prerequisites")], strict=True):
    col.metric(label, f"{counts[key]:,}")
rejected = world.rejected()
if rejected:  # what the data contract refused is not shown anywhere in the explorer, as in the CLI
    st.warning("Rows the data contract rejected are left out: "
               + ", ".join(f"{n:,} {t}" for t, n in rejected.items())
               + f". `kt data validate {world.world_dir}` lists them with the reason.")
meta = world.metadata()
if meta.get("start"):
    st.caption(f"Simulated world `{world.world_dir}`: {meta['start'][:10]} to {meta.get('end', '?')[:10]}")
else:
    st.caption(f"World `{world.world_dir}`")

content = world.content_breakdown()
left, right = st.columns(2)
with left:
    st.subheader("Languages")
    by_lang = content.groupby("language", as_index=False)["items"].sum()
    st.altair_chart(alt.Chart(by_lang).mark_bar().encode(x=alt.X("language:N", sort="-y"), y="items:Q",
                                                         tooltip=["language", "items"]), width="stretch")
with right:
    st.subheader("Kinds")
    by_kind = content.groupby("kind", as_index=False)["items"].sum()
    st.altair_chart(alt.Chart(by_kind).mark_bar().encode(x=alt.X("kind:N", sort="-y"), y="items:Q",
                                                         tooltip=["kind", "items"]), width="stretch")

st.subheader("Champion model")
try:
    champ = services.current_champion()
except MissingPiece as exc:
    services.missing(exc)
    st.stop()
if champ is None:
    st.info(f"No champion yet for `{services.settings().registered_model}`: {services.DEMO_HINT} "
            "(or `kt train` then `kt promote`).")
    st.stop()
c1, c2, c3, c4 = st.columns(4)
c1.metric("Registered model", champ.name)
c2.metric("Version", champ.version)
c3.metric("Test AUC", f"{champ.metrics['test_auc']:.4f}" if "test_auc" in champ.metrics else "n/a")
c4.metric("Model", champ.params.get("model", champ.tags.get("model", "?")))
st.caption(f"Run `{champ.run_name}` ({champ.run_id}), data `{champ.tags.get('data', '?')}`")
final = {k: v for k, v in sorted(champ.metrics.items()) if k.startswith(("test_", "best_"))}
st.dataframe([{"metric": k, "value": v} for k, v in final.items()], hide_index=True)
