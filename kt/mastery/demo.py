"""A side-by-side view of estimated and true mastery for a few simulated users (``kt demo``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kt.data.times import to_seconds
from kt.mastery.tracker import MasteryTracker


def demo_report(world_dir: str | Path, tracker: MasteryTracker, user_ids: Sequence[str], now=None, top: int | None = 8) -> pd.DataFrame:
    """Rows (user_id, topic_id, mastery, true_mastery, confidence, n_obs, stage, last_practiced)
    for users the tracker already holds, at ``now`` (default: the latest event of each user).

    Only practised topics are shown, the ``top`` most practised per user (None: all).
    ``str(df)`` or :func:`format_demo` gives a printable table.
    """
    from kt.sim import LearnerEnv

    env = LearnerEnv.from_world(world_dir)
    frames = []
    for u in user_ids:
        tm = tracker.topic_mastery(u, now=now)
        # Without an explicit ``now`` the truth is read at the user's own clock (the end of the
        # history): the tracker's last *interaction* can precede the last event (ambiguous
        # outcomes are not interactions), and the simulator's state only runs forward.
        at = to_seconds(now) if now is not None else None
        truth = env.true_mastery(u, pd.Timestamp(at, unit="s", tz="UTC") if at is not None else None)
        lookup = dict(zip(env.topic_ids, truth, strict=True))
        tm.insert(2, "true_mastery", tm["topic_id"].map(lookup).astype(float))
        tm = tm[tm["n_obs"] > 0].sort_values(["n_obs", "topic_id"], ascending=[False, True])
        frames.append(tm.head(top) if top else tm)
        frames[-1].insert(0, "user_id", u)
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out


def format_demo(df: pd.DataFrame) -> str:
    """Plain-text table, one block per user."""
    if df.empty:
        return "(no users)"
    cols = ["topic_id", "mastery", "true_mastery", "confidence", "n_obs", "stage"]
    blocks = []
    for u, g in df.groupby("user_id", sort=False):
        rho = g[["mastery", "true_mastery"]].corr(method="spearman").iloc[0, 1] if len(g) > 2 else np.nan
        blocks.append(f"user {u} (spearman est vs true over shown topics: {rho:.2f})\n"
                      + g[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))  # fmt: skip
    return "\n\n".join(blocks)
