"""Helpers shared by the planner tests (plain functions and a LearnerModel for non-simulator graphs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kt.planner import Catalog


def history_of(world, user_id: str) -> pd.DataFrame:
    ev = world.events
    return ev.loc[ev["user_id"] == user_id, ["content_id", "timestamp"]].reset_index(drop=True)


def busiest_user(world) -> str:
    return str(world.events["user_id"].value_counts().index[0])


class TableLearner:
    """A LearnerModel over any concept graph: fixed topic masteries, and a logistic success model
    on item difficulty (p = sigmoid(8 (mastery - difficulty) + 1)). Used to drive the planner on
    a hand-made catalog that has nothing to do with the simulator."""

    def __init__(self, mastery: dict[str, float], catalog: Catalog) -> None:
        self.mastery = mastery
        self.catalog = catalog

    def topic_mastery(self, user_id, now=None) -> pd.DataFrame:
        rows = [(t, m, 1.0, 5, "mastered" if m >= 0.8 else "learning", None) for t, m in self.mastery.items()]
        return pd.DataFrame(rows, columns=["topic_id", "mastery", "confidence", "n_obs", "stage", "last_practiced"])

    def predict_success(self, user_id, content_ids) -> np.ndarray:
        idx = self.catalog.index_of(list(content_ids))
        topics = [self.catalog.topics.tokens[t] for t in self.catalog.primary_topic[idx]]
        m = np.array([self.mastery.get(t, 0.0) for t in topics])
        return 1.0 / (1.0 + np.exp(-(8.0 * (m - self.catalog.difficulty[idx]) + 1.0)))


def handmade_world(n_per_topic: int = 30, seed: int = 0):
    """A 4-topic concept graph unrelated to the simulator: alg -> calc, alg -> linalg,
    calc -> ml, linalg -> ml; items spread over difficulty, in en/ko; one folder per topic and
    language plus a few cross-topic folders. Returns (items, topics, prerequisites, folder_items)."""
    rng = np.random.default_rng(seed)
    topics = pd.DataFrame({"topic_id": ["alg", "calc", "linalg", "ml"],
                           "name": ["Algebra", "Calculus", "Linear algebra", "Machine learning"]})
    prereq = pd.DataFrame({"topic_id": ["calc", "linalg", "ml", "ml"], "prerequisite_id": ["alg", "alg", "calc", "linalg"]})
    rows, folders = [], []
    for t in topics["topic_id"]:
        for j in range(n_per_topic):
            cid = f"{t}-{j:03d}"
            lang = "en" if j % 2 == 0 else "ko"
            rows.append((cid, f"{t} {j}", f"https://x/{cid}", lang, t, (j + 0.5) / n_per_topic,
                         ["article", "video", "paper"][j % 3], pd.Timestamp("2026-01-01", tz="UTC")))
            folders.append((f"f-{t}-{lang}", cid))
            if rng.random() < 0.2:
                folders.append((f"f-mix-{j % 3}", cid))
    items = pd.DataFrame(rows, columns=["content_id", "title", "url", "language", "topics", "difficulty", "kind", "created_at"])
    folder_items = pd.DataFrame(folders, columns=["folder_id", "content_id"])
    return items, topics, prereq, folder_items
