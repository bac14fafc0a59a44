"""Planner evaluation: simulated users following each policy, compared."""

import altair as alt
import services
import streamlit as st

from kt import insights
from kt.planner.evaluation import is_reference

st.title("Planner evaluation")

s = services.settings()
files = insights.find_planner_results(s)
if not files:
    st.info(f"No planner evaluation results (`planner*.json`) under `{s.data_dir}` or "
            f"`{s.home / 'bench' / 'results'}`: {services.DEMO_HINT}.")
    st.stop()
path = st.selectbox("Results file", files, format_func=lambda p: str(p), key="planner_file")
try:
    df = services.policies(str(path), path.stat().st_mtime)
except ValueError as exc:
    st.error(str(exc))
    st.stop()

st.caption("Each policy's simulated users study its bundles; E_p = (E_end - E_start) / (E_sup - E_start) "
           "on their target topics (docs: kt/planner/evaluation.py).")
best = df[~df["policy"].map(is_reference)].iloc[0]  # a ceiling reference is no policy to pick
c = st.columns(4)
c[0].metric("Best policy (E_p)", str(best["policy"]), f"{best['e_p']:.3f}")
c[1].metric("Policies", len(df))
facts = services.evaluation_summary(str(path), path.stat().st_mtime)
ratios = insights.planner_ratios(facts)
if ratios:  # the first planner row: the default planner (bench files hold variants after it)
    name, ratio = next(iter(ratios.items()))
    c[2].metric(f"{name} / best baseline (E_p)", f"{ratio:.2f}x",
                help="; ".join(f"{k}: {v:.2f}x" for k, v in ratios.items()))
if "learned_prerequisites.precision" in facts:
    c[3].metric("Learned prerequisites: precision / recall",
                f"{facts['learned_prerequisites.precision']:.2f} / {facts.get('learned_prerequisites.recall', float('nan')):.2f}")
titles = {"e_p": "learning effectiveness E_p", "success_rate": "success rate", "coverage": "coverage",
          "diversity": "bundle diversity"}
charts = st.columns(2)
for i, metric in enumerate(insights.POLICY_METRICS):
    with charts[i % 2]:
        st.markdown(f"**{titles[metric]}**")
        base = alt.Chart(df).encode(y=alt.Y("policy:N", sort=df["policy"].tolist(), title=None))
        bars = base.mark_bar().encode(x=alt.X(f"{metric}:Q", title=titles[metric]),
                                      color=alt.condition(alt.datum.policy == best["policy"], alt.value("#2e7d32"),
                                                          alt.value("#90a4ae")),
                                      tooltip=["policy", alt.Tooltip(f"{metric}:Q", format=".4f")])
        chart = bars
        if metric == "e_p" and "e_p_std" in df.columns:
            chart = bars + base.mark_errorbar().encode(x=alt.X("lo:Q", title=titles[metric]), x2="hi:Q").transform_calculate(
                lo="datum.e_p - datum.e_p_std", hi="datum.e_p + datum.e_p_std")
        st.altair_chart(chart, width="stretch")
st.dataframe(df, hide_index=True)
if facts:
    with st.expander("About this evaluation"):
        st.json(facts)
