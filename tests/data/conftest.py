"""A tiny, valid world directory written as CSV (tests corrupt copies of it)."""

from __future__ import annotations

from pathlib import Path

import pytest

WORLD_CSV = {
    "topics": "topic_id,name,parent_id\nt1,Algebra,\nt2,Calculus,t1\nt3,Topology,\n",
    "prerequisites": "topic_id,prerequisite_id\nt2,t1\nt3,t2\n",
    "items": (
        "content_id,title,url,language,topics,difficulty,kind,created_at\n"
        "c1,Intro,https://x/1,en,t1,0.2,article,2024-01-01T00:00:00Z\n"
        "c2,Limits,https://x/2,fr,t2|t1,0.5,video,2024-01-02T00:00:00Z\n"
        "c3,Spaces,https://x/3,ko,t3,0.9,paper,2024-01-03T00:00:00Z\n"
    ),
    "users": "user_id,languages,created_at\nu1,en|fr,2024-01-01T00:00:00Z\nu2,ko,2024-01-01T00:00:00Z\n",
    "folders": "folder_id,user_id,name,created_at\nf1,u1,Math,2024-01-05T00:00:00Z\n",
    "folder_items": "folder_id,content_id,added_at\nf1,c1,2024-01-05T00:00:00Z\n",
    "events": (
        "event_id,user_id,content_id,timestamp,folder_id,read_fraction,dwell_seconds,n_highlights,quiz_correct\n"
        "e1,u1,c1,2024-02-01T10:00:00Z,f1,0.9,120,3,\n"
        "e2,u1,c2,2024-02-01T11:00:00Z,,0.1,5,0,\n"
        "e3,u2,c3,2024-02-02T09:00:00Z,,0.5,30,1,1.0\n"
        "e4,u2,c1,2024-02-02T10:00:00Z,,0.5,30,1,\n"
    ),
}


def write_world(root: Path, overrides: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in {**WORLD_CSV, **(overrides or {})}.items():
        (root / f"{name}.csv").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def world_dir(tmp_path: Path) -> Path:
    return write_world(tmp_path / "world")


@pytest.fixture
def make_world(tmp_path: Path):
    """``make_world(overrides)`` -> a fresh world dir with some tables replaced by the given CSV text."""
    counter = iter(range(1000))

    def make(overrides: dict[str, str] | None = None) -> Path:
        return write_world(tmp_path / f"world{next(counter)}", overrides)

    return make
