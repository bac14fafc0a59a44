"""Shared by the API tests (a plain module: conftest names collide across test folders)."""

from __future__ import annotations

import subprocess
from pathlib import Path

API_KEY = "test-key"


def make_settings(home: Path, db_url: str):
    from kt.config import Settings

    return Settings(home=home, db_url=db_url, api_keys=(API_KEY,))


def spawned_children(parent: int) -> list[int]:
    """Pids of ``parent``'s multiprocessing children (spawn context; not its resource tracker)."""
    pids = []
    for pid in subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout.split():
        try:
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                pids.append(int(pid))
        except FileNotFoundError:  # exited between pgrep and the read
            pass
    return pids
