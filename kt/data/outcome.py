"""From highlight events to KT interactions: the outcome rule.

KT needs a binary outcome per interaction; highlight logs only carry signals (how much was read,
dwell time, number of highlights, sometimes a quiz answer). :class:`OutcomeRule` turns the signals
into 1 (understood), 0 (not understood) or "ambiguous", in this order of precedence:

1. a quiz answer, when present, decides (``quiz_correct`` 1.0 -> 1, 0.0 -> 0);
2. understood (1) when ``read_fraction >= read_understood`` or
   (``n_highlights >= highlights_understood`` and ``dwell_seconds >= dwell_understood``);
3. not understood (0) when ``read_fraction < read_bounced`` or ``dwell_seconds < dwell_bounced``;
4. otherwise ambiguous, handled by ``ambiguous``: ``"drop"`` (default; dropped events are counted in
   the report, never lost silently), ``"zero"`` or ``"one"``.

Real KT datasets carry true correctness and skip this rule (their responses are the outcome).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from kt.data.schema import primary_topics
from kt.data.sequences import KTSequences, Vocab

AMBIGUOUS_POLICIES = ("drop", "zero", "one")


@dataclass(frozen=True)
class OutcomeRule:
    """Thresholds of the outcome rule (defaults documented in docs/data.md)."""

    read_understood: float = 0.8
    highlights_understood: int = 2
    dwell_understood: float = 60.0
    read_bounced: float = 0.2
    dwell_bounced: float = 15.0
    use_quiz: bool = True
    ambiguous: str = "drop"

    def __post_init__(self) -> None:
        if self.ambiguous not in AMBIGUOUS_POLICIES:
            raise ValueError(f"OutcomeRule.ambiguous must be one of {AMBIGUOUS_POLICIES}, got {self.ambiguous!r}")
        if not 0.0 <= self.read_bounced <= self.read_understood <= 1.0:
            raise ValueError("OutcomeRule needs 0 <= read_bounced <= read_understood <= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> OutcomeRule:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown OutcomeRule key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> OutcomeRule:
        import yaml

        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
            raise ValueError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of OutcomeRule fields")
        return cls.from_dict(data.get("outcome_rule", data))

    def to_dict(self) -> dict:
        return asdict(self)

    def label(self, events: pd.DataFrame) -> np.ndarray:
        """(N,) float outcomes: 1.0, 0.0, or NaN for ambiguous (before the ambiguous policy)."""
        read = events["read_fraction"].to_numpy(float)
        dwell = events["dwell_seconds"].to_numpy(float)
        highlights = events["n_highlights"].to_numpy(float)
        out = np.full(len(events), np.nan)
        understood = (read >= self.read_understood) | (
            (highlights >= self.highlights_understood) & (dwell >= self.dwell_understood)
        )
        bounced = (read < self.read_bounced) | (dwell < self.dwell_bounced)
        out[bounced] = 0.0
        out[understood] = 1.0  # understood wins over bounced (e.g. a fast full read)
        if self.use_quiz and "quiz_correct" in events.columns:
            quiz = pd.to_numeric(events["quiz_correct"], errors="coerce").to_numpy(float)
            has = ~np.isnan(quiz)
            out[has] = (quiz[has] >= 0.5).astype(float)
        return out


@dataclass
class OutcomeReport:
    """What the rule did; ``n_dropped_ambiguous`` and ``n_unknown_content`` are events not in the output."""

    n_events: int
    n_quiz: int
    n_understood: int
    n_not_understood: int
    n_ambiguous: int
    ambiguous_policy: str
    n_dropped_ambiguous: int
    n_unknown_content: int
    n_interactions: int

    def summary(self) -> str:
        return (
            f"{self.n_events} events -> {self.n_interactions} interactions "
            f"(quiz {self.n_quiz}, understood {self.n_understood}, not understood {self.n_not_understood}, "
            f"ambiguous {self.n_ambiguous} [{self.ambiguous_policy}], dropped ambiguous {self.n_dropped_ambiguous}, "
            f"unknown content {self.n_unknown_content})"
        )


INTERACTION_COLUMNS = ["event_id", "user_id", "content_id", "topic_id", "timestamp", "outcome"]


def events_to_interactions(
    events: pd.DataFrame, items: pd.DataFrame, rule: OutcomeRule | None = None
) -> tuple[pd.DataFrame, OutcomeReport]:
    """Label events with the rule and attach each item's primary topic (first of ``items.topics``).

    Events whose content is not in ``items`` cannot get a topic: they are dropped and counted.
    """
    rule = rule or OutcomeRule()
    label = rule.label(events)
    has_quiz = (
        pd.to_numeric(events["quiz_correct"], errors="coerce").notna().to_numpy()
        if rule.use_quiz and "quiz_correct" in events.columns
        else np.zeros(len(events), bool)
    )
    ambiguous = np.isnan(label)
    fill = {"zero": 0.0, "one": 1.0}.get(rule.ambiguous)
    if fill is not None:
        label = np.where(ambiguous, fill, label)
    primary = pd.Series(primary_topics(items["topics"]).to_numpy(), index=items["content_id"].to_numpy())
    topic = events["content_id"].map(primary)
    unknown = topic.isna().to_numpy()
    keep = ~np.isnan(label) & ~unknown
    out = events.loc[keep, ["event_id", "user_id", "content_id"]].reset_index(drop=True)
    out["topic_id"] = topic[keep].to_numpy(dtype=object)
    out["timestamp"] = events["timestamp"][keep].reset_index(drop=True)
    out["outcome"] = label[keep].astype(np.int8)
    not_quiz = ~has_quiz
    raw = rule.label(events) if fill is not None else label  # before the ambiguous fill
    report = OutcomeReport(
        n_events=len(events),
        n_quiz=int(has_quiz.sum()),
        n_understood=int((not_quiz & (raw == 1.0)).sum()),
        n_not_understood=int((not_quiz & (raw == 0.0)).sum()),
        n_ambiguous=int(ambiguous.sum()),
        ambiguous_policy=rule.ambiguous,
        n_dropped_ambiguous=int((ambiguous & (rule.ambiguous == "drop") & ~unknown).sum()),
        n_unknown_content=int(unknown.sum()),
        n_interactions=len(out),
    )
    return out, report


def _encode(values: pd.Series, vocab: Vocab) -> np.ndarray:
    codes, uniques = pd.factorize(values.astype(str))
    index = np.fromiter((vocab.add(t) for t in uniques), dtype=np.int64, count=len(uniques))
    return index[codes]


def interactions_to_sequences(
    interactions: pd.DataFrame, item_vocab: Vocab | None = None, concept_vocab: Vocab | None = None
) -> tuple[KTSequences, Vocab, Vocab]:
    """Group interactions into per-user sequences ordered by time (stable: ties keep input order).

    Users are ordered by user_id. Vocabs are grown in place with unseen ids (existing indices never
    change), so passing the training vocabs keeps indices consistent across splits. ``times`` are unix
    seconds.
    """
    item_vocab = item_vocab if item_vocab is not None else Vocab()
    concept_vocab = concept_vocab if concept_vocab is not None else Vocab()
    ts = pd.to_datetime(interactions["timestamp"], utc=True)
    times = ((ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)
    user_codes, uniq = pd.factorize(interactions["user_id"].astype(str), sort=True)
    # last key is primary: user, then time, then input position (a stable sort)
    order = np.lexsort((np.arange(len(user_codes)), times, user_codes))
    df = interactions.iloc[order]
    times = times[order]
    offsets = np.zeros(len(uniq) + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_codes, minlength=len(uniq)), out=offsets[1:])
    items = _encode(df["content_id"], item_vocab)
    concepts = _encode(df["topic_id"], concept_vocab)
    seqs = KTSequences(
        offsets=offsets,
        items=items,
        concepts=concepts,
        responses=df["outcome"].to_numpy(np.int8),
        user_ids=np.asarray(uniq, dtype=object),
        num_items=len(item_vocab),
        num_concepts=len(concept_vocab),
        times=times,
        has_item_ids=True,
    )
    return seqs, item_vocab, concept_vocab
