"""Experiments: MLflow runs, learning curves, two runs side by side, the champion."""

import altair as alt
import pandas as pd
import services
import streamlit as st

from kt import insights
from kt.insights import MissingPiece

st.title("Experiments")

s = services.settings()
try:
    runs = services.runs(s.mlflow_tracking_uri)
    champ = services.current_champion()
except MissingPiece as exc:
    services.missing(exc)
    st.stop()
if runs.empty:
    st.info(f"The MLflow store has no runs: {services.DEMO_HINT} (or `kt train`).")
    st.stop()

if champ is not None:
    st.success(f"Champion: `{champ.name}` version {champ.version}, from run `{champ.run_name}` ({champ.run_id})",
               icon=":material/emoji_events:")
else:
    st.warning(f"No version of `{s.registered_model}` is champion yet (`kt promote`).")

runs = runs.assign(champion=runs["run_id"].eq(champ.run_id if champ else None))
metric_cols = sorted(c for c in runs.columns if c.startswith("metrics."))
st.subheader("Runs")
st.dataframe(runs[["run_name", "champion", "status", "start_time", "experiment", *metric_cols, "run_id"]],
             hide_index=True, column_config={c: st.column_config.NumberColumn(c.removeprefix("metrics."), format="%.4f")
                                             for c in metric_cols})

label = {r: f"{n or '?'} ({r[:8]})" for r, n in zip(runs["run_id"], runs["run_name"], strict=True)}
st.subheader("Learning curves")
run_id = st.selectbox("Run", list(label), format_func=label.get, key="curve_run")
hist = services.history(s.mlflow_tracking_uri, run_id)
if hist.empty:
    st.info("No learning curve for this run: a curve needs a metric logged at two epochs or more "
            "(a one-epoch run has single values; they are in the comparison below).")
else:
    keys = sorted(hist["key"].unique())
    default = [k for k in ("valid_auc", "train_loss") if k in keys] or keys[:1]
    chosen = st.multiselect("Metrics", keys, default=default, key="curve_keys")
    st.altair_chart(alt.Chart(hist[hist["key"].isin(chosen)]).mark_line(point=True).encode(
        x=alt.X("step:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", scale=alt.Scale(zero=False)), color="key:N", tooltip=["key", "step", "value"]),
        width="stretch")

st.subheader("Compare two runs")
ids = list(label)
c1, c2 = st.columns(2)
a = c1.selectbox("Run A", ids, index=0, format_func=label.get, key="cmp_a")
b = c2.selectbox("Run B", ids, index=min(1, len(ids) - 1), format_func=label.get, key="cmp_b")
table = insights.compare_runs(runs, [a] if a == b else [a, b])
st.dataframe(table, height=320)
both = pd.concat([services.history(s.mlflow_tracking_uri, r).assign(run=label[r]) for r in dict.fromkeys([a, b])])
if not both.empty:
    key = st.selectbox("Curve", sorted(both["key"].unique()), key="cmp_key",
                       index=sorted(both["key"].unique()).index("valid_auc") if "valid_auc" in set(both["key"]) else 0)
    st.altair_chart(alt.Chart(both[both["key"] == key]).mark_line(point=True).encode(
        x=alt.X("step:Q", title="epoch", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("value:Q", title=key, scale=alt.Scale(zero=False)), color="run:N",
        tooltip=["run", "step", "value"]), width="stretch")
