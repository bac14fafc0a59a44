"""The one thing the planner needs from a learner model.

The planner never imports a KT model or the mastery tracker: it talks to anything that can say
where a user stands per topic and how likely they are to succeed on given items. The
:class:`kt.mastery.MasteryTracker` fulfils this protocol; so can a hand-written model over a
concept graph that has nothing to do with the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

STAGES = ("new", "learning", "needs_review", "mastered")


@runtime_checkable
class LearnerModel(Protocol):
    """Per-user knowledge state, as the planner reads it."""

    def topic_mastery(self, user_id: str, now: pd.Timestamp | None = None) -> pd.DataFrame:
        """One row per topic: ``topic_id, mastery, confidence, n_obs, stage, last_practiced``, and
        optionally ``progress`` (mastery gained over the topic's last practices; NaN when unknown).

        ``mastery`` in [0, 1]; ``stage`` in {new, learning, needs_review, mastered}. Topics the
        frame leaves out are read as ``new`` with the planner's ``unseen_mastery``; a frame
        without ``progress`` never makes a topic stalled.
        """
        ...

    def predict_success(self, user_id: str, content_ids: Sequence[str]) -> np.ndarray:
        """(len(content_ids),) probabilities that the user understands each item now."""
        ...
