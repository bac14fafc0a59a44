"""OutcomeRule cases, events -> interactions -> sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kt.data.outcome import OutcomeRule, events_to_interactions, interactions_to_sequences
from kt.data.sequences import Vocab


def ev(read, dwell, highlights, quiz=None):
    return {"read_fraction": read, "dwell_seconds": dwell, "n_highlights": highlights, "quiz_correct": quiz}


@pytest.mark.parametrize(
    "event, expected",
    [
        (ev(0.1, 5, 0, quiz=1.0), 1.0),  # quiz decides even for a bounce
        (ev(1.0, 600, 9, quiz=0.0), 0.0),  # ... and for a full read
        (ev(0.8, 20, 0), 1.0),  # read threshold is inclusive
        (ev(0.79, 20, 0), np.nan),
        (ev(0.5, 60, 2), 1.0),  # highlights + dwell
        (ev(0.5, 59, 2), np.nan),
        (ev(0.5, 100, 1), np.nan),
        (ev(0.19, 100, 1), 0.0),  # barely read
        (ev(0.5, 14, 1), 0.0),  # bounced (dwell)
        (ev(0.9, 5, 0), 1.0),  # understood wins over a short dwell
    ],
)
def test_default_rule_cases(event, expected):
    got = OutcomeRule().label(pd.DataFrame([event]))[0]
    assert (np.isnan(got) and np.isnan(expected)) or got == expected


def test_rule_config_roundtrip_and_validation(tmp_path):
    rule = OutcomeRule.from_dict({"read_understood": 0.9, "ambiguous": "zero"})
    assert OutcomeRule.from_dict(rule.to_dict()) == rule
    path = tmp_path / "rule.yaml"
    path.write_text("outcome_rule:\n  dwell_bounced: 5\n  ambiguous: one\n")
    assert OutcomeRule.from_yaml(path) == OutcomeRule(dwell_bounced=5, ambiguous="one")
    with pytest.raises(ValueError, match="unknown OutcomeRule key"):
        OutcomeRule.from_dict({"read_threshold": 0.5})
    with pytest.raises(ValueError, match="ambiguous"):
        OutcomeRule(ambiguous="maybe")
    assert OutcomeRule(use_quiz=False).label(pd.DataFrame([ev(0.1, 5, 0, quiz=1.0)]))[0] == 0.0


def make_events():
    events = pd.DataFrame(
        [
            {"event_id": "e1", "user_id": "u2", "content_id": "c1", "timestamp": "2024-01-01T00:00:10Z", **ev(0.9, 60, 0)},
            {"event_id": "e2", "user_id": "u1", "content_id": "c2", "timestamp": "2024-01-01T00:00:20Z", **ev(0.5, 30, 0)},
            {"event_id": "e3", "user_id": "u1", "content_id": "c1", "timestamp": "2024-01-01T00:00:05Z", **ev(0.1, 5, 0)},
            {"event_id": "e4", "user_id": "u1", "content_id": "c2", "timestamp": "2024-01-01T00:00:05Z", **ev(0.1, 5, 0, 1.0)},
            {"event_id": "e5", "user_id": "u1", "content_id": "zz", "timestamp": "2024-01-01T00:00:05Z", **ev(0.9, 5, 0)},
        ]
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    items = pd.DataFrame({"content_id": ["c1", "c2"], "topics": ["t1", "t2|t1"]})
    return events, items


def test_events_to_interactions_counts_everything():
    events, items = make_events()
    inter, report = events_to_interactions(events, items)
    assert inter["event_id"].tolist() == ["e1", "e3", "e4"]
    assert inter["topic_id"].tolist() == ["t1", "t1", "t2"]
    assert inter["outcome"].tolist() == [1, 0, 1]
    assert (report.n_events, report.n_quiz, report.n_ambiguous, report.n_dropped_ambiguous) == (5, 1, 1, 1)
    assert report.n_unknown_content == 1 and report.n_interactions == 3
    assert report.n_events == report.n_interactions + report.n_dropped_ambiguous + report.n_unknown_content
    inter_zero, rep = events_to_interactions(events, items, OutcomeRule(ambiguous="zero"))
    assert inter_zero.set_index("event_id").loc["e2", "outcome"] == 0 and rep.n_dropped_ambiguous == 0


def test_interactions_to_sequences_sorted_stable_with_vocab():
    events, items = make_events()
    inter, _ = events_to_interactions(events, items, OutcomeRule(ambiguous="one"))
    item_vocab = Vocab(["c2", "c1"])
    seqs, iv, cv = interactions_to_sequences(inter, item_vocab=item_vocab)
    assert list(seqs.user_ids) == ["u1", "u2"]
    u1 = seqs.sequence(0)
    # u1: e3 (t=5) and e4 (t=5, tie keeps input order) then e2 (t=20)
    assert [iv.decode(i) for i in u1["items"]] == ["c1", "c2", "c2"]
    assert u1["responses"].tolist() == [0, 1, 1]
    assert u1["times"].tolist() == [1704067205, 1704067205, 1704067220]
    assert iv is item_vocab and iv.index("c2") == 1  # given vocab kept its indices
    assert [cv.decode(c) for c in u1["concepts"]] == ["t1", "t2", "t2"]
    assert seqs.num_items == 2 and seqs.num_concepts == 2
