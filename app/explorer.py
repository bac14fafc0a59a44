"""ktpath explorer: a Streamlit shell over the library for product managers.

    streamlit run app/explorer.py        # or: kt explore [--port 8501]

Pages live in ``app/views/`` (one small module each); data access in ``app/services.py``;
every number shown comes from ``kt.*`` (``kt.insights``, ``kt.mastery``, ``kt.planner``,
``kt.train.tracking``). Paths come from ``Settings.from_env()``: set KT_HOME to browse
another project directory. See docs/explorer.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

APP_DIR = Path(__file__).resolve().parent
if str(APP_DIR) not in sys.path:  # `import services` from the pages, however the app was started
    sys.path.insert(0, str(APP_DIR))

import services  # noqa: E402

st.set_page_config(page_title="ktpath explorer", page_icon=":material/school:", layout="wide")

PAGES = [
    st.Page(APP_DIR / "views" / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(APP_DIR / "views" / "user.py", title="User", icon=":material/person:"),
    st.Page(APP_DIR / "views" / "topics.py", title="Topics", icon=":material/account_tree:"),
    st.Page(APP_DIR / "views" / "experiments.py", title="Experiments", icon=":material/science:"),
    st.Page(APP_DIR / "views" / "planner_eval.py", title="Planner evaluation", icon=":material/route:"),
]

with st.sidebar:
    s = services.settings()
    st.caption(f"KT home: `{s.home}`")
st.navigation(PAGES).run()
