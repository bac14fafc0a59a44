"""Mastery tracking: per-user topic mastery, confidence and learning stage from a KT model.

Online (:class:`MasteryTracker`, persisted in :class:`MasteryStateStore`), batch
(:func:`score_world`), and judged against the simulator (:func:`evaluate_quality`).
Definitions: docs/mastery.md.
"""

from kt.mastery.batch import score_interactions, score_world
from kt.mastery.catalog import TopicCatalog
from kt.mastery.config import STAGES, MasteryConfig, StageThresholds
from kt.mastery.demo import demo_report, format_demo
from kt.mastery.stages import confidence, stage_codes
from kt.mastery.store import MasteryStateStore, StateMeta
from kt.mastery.tracker import MasteryTracker, StaleStateError

__all__ = [
    "STAGES", "MasteryConfig", "MasteryStateStore", "MasteryTracker", "StageThresholds", "StaleStateError",
    "StateMeta", "TopicCatalog", "confidence", "demo_report", "format_demo", "score_interactions",
    "score_world", "stage_codes",
]  # fmt: skip
