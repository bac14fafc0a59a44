"""Load a world directory (the data contract's Parquet/CSV tables) into the store.

Tables are validated by :func:`kt.data.io.load_world` (rejected rows are quarantined, never
stored). Events get their outcome from :class:`kt.data.outcome.OutcomeRule` on the way in, the
same rule the API applies on ingest, and are inserted idempotently: loading a world twice
stores each event once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kt.data.outcome import OutcomeRule
from kt.store.store import EventStore

CATALOG_ORDER = ("topics", "prerequisites", "items", "users", "folders", "folder_items")


def event_outcomes(events: pd.DataFrame, rule: OutcomeRule) -> np.ndarray:
    """(N,) float outcomes by the rule, its ambiguous policy applied; NaN = ambiguous, kept
    in the log but not a KT interaction (policy ``drop``)."""
    label = rule.label(events)
    fill = {"zero": 0.0, "one": 1.0}.get(rule.ambiguous)
    return np.where(np.isnan(label), fill, label) if fill is not None else label


@dataclass
class WorldLoadReport:
    rows: dict[str, int] = field(default_factory=dict)
    events_inserted: int = 0
    events_duplicate: int = 0
    rejected: int = 0
    summary_lines: list[str] = field(default_factory=list)


def load_world_into_store(
    store: EventStore,
    world_dir: str | Path,
    rule: OutcomeRule | None = None,
    *,
    quarantine_dir: str | Path | None = None,
    batch_size: int = 50_000,
) -> WorldLoadReport:
    """Validate ``world_dir`` and upsert its catalog and events into ``store``."""
    from kt.data.io import load_world

    rule = rule or OutcomeRule()
    world = load_world(world_dir, quarantine_dir=quarantine_dir)
    report = WorldLoadReport(rejected=world.n_rejected, summary_lines=world.summary_lines())
    for name in CATALOG_ORDER:
        report.rows[name] = store.upsert(name, getattr(world, name))
    events = world.events.sort_values(["timestamp", "event_id"], kind="stable")
    outcome = event_outcomes(events, rule)
    for start in range(0, len(events), batch_size):
        part = events.iloc[start : start + batch_size].copy()
        part["outcome"] = outcome[start : start + batch_size]
        res = store.insert_events(part)
        report.events_inserted += len(res.inserted)
        report.events_duplicate += len(res.duplicates)
    report.rows["events"] = len(events)
    # the catalog changed without entries in its change log: no shared learning path computed
    # before this load may be served after it
    store.clear_cached_paths()
    return report
