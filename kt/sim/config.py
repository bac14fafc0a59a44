"""Simulator configuration: one typed dataclass and a few named presets.

Every number that shapes the generated world lives here, so ``world.json`` (which stores
``asdict(config)``) is a complete recipe: the same config always regenerates the same bytes.
The learner-dynamics equations these parameters feed are in ``docs/simulator.md`` and
:mod:`kt.sim.dynamics`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime

DEFAULT_LANGUAGES: dict[str, float] = {"en": 0.45, "ko": 0.15, "ja": 0.12, "es": 0.12, "de": 0.08, "fr": 0.08}
DEFAULT_KINDS: dict[str, float] = {"article": 0.5, "paper": 0.15, "video": 0.2, "book": 0.05, "podcast": 0.1}
# Typical full-read time per kind (seconds); dwell is drawn around read_fraction * this.
DEFAULT_KIND_SECONDS: dict[str, float] = {
    "article": 300.0,
    "paper": 900.0,
    "video": 600.0,
    "book": 1800.0,
    "podcast": 1200.0,
}


@dataclass(frozen=True)
class SimConfig:
    """A LINER-like world: topic DAG, multilingual catalog, users, folders, learner dynamics.

    World size
      seed, n_topics, n_items, n_users, days (simulated period), start (ISO date, UTC, day 0).
      user_chunk: users simulated together (vectorised); part of the recipe, since the random
        streams are drawn per chunk (a different chunk size gives a different, equally valid world).
    Catalog
      languages / kinds: name -> sampling weight. new_item_fraction: share of items created
      during the simulated period (uniform over it) rather than before day 0.
      secondary_topic_prob: share of items with a second topic. topic_zipf: skew of topic sizes.
    Users
      max_interests: 1..max interest topics. second_language_prob. activity_a/b: Beta prior
      of the daily activity probability. events_per_day: mean events in an active day.
      folders_per_user: mean folders (Poisson). folder_items: mean items per folder.
    Behaviour
      p_interest / p_folder / p_popular: where an event's item comes from. p_explore: an
      interest pick jumps to a random topic. popularity_zipf: skew of the popular pool.
      file_prob: an event with highlights is filed into the user's folder on that topic.
      quiz_rate: share of events carrying a quiz answer.
    Dynamics (see docs/simulator.md)
      a, b: success logit slope and offset. gate_kappa, gate_theta: prerequisite gate
      sigmoid(kappa * (R - theta)). gate_success_floor: success multiplier when the gate is closed.
      readiness: "min" or "mean" of prerequisite masteries. eta, eta_secondary: learning rates.
      zpd_delta, zpd_sigma: the right-difficulty bump. learn_on_failure: share of the gain kept
      when the latent success is 0. floor: forgetting floor (also the lowest initial mastery).
      tau_days: forgetting time constant; tau_growth: relative growth of tau per practice.
      retention: share of initial mastery (above floor) that is long-term (the initial per-topic
      floor); consolidation: share of mastery above the floor moved into it by each practice.
    Output
      snapshot_every_days: full mastery snapshots every N days (0: only the final one).
    """

    seed: int = 0
    n_topics: int = 40
    n_items: int = 5_000
    n_users: int = 2_000
    days: int = 28
    start: str = "2026-01-05"
    user_chunk: int = 20_000
    # catalog
    languages: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LANGUAGES))
    kinds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KINDS))
    kind_seconds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_SECONDS))
    new_item_fraction: float = 0.2
    secondary_topic_prob: float = 0.3
    topic_zipf: float = 0.6
    # users
    max_interests: int = 3
    second_language_prob: float = 0.3
    activity_a: float = 1.5
    activity_b: float = 3.0
    events_per_day: float = 4.0
    folders_per_user: float = 1.5
    folder_items: float = 8.0
    # behaviour
    p_interest: float = 0.7
    p_folder: float = 0.15
    p_popular: float = 0.15
    p_explore: float = 0.15
    popularity_zipf: float = 0.9
    file_prob: float = 0.5
    quiz_rate: float = 0.3
    # dynamics
    a: float = 8.0
    b: float = 1.0
    gate_kappa: float = 20.0
    gate_theta: float = 0.4
    gate_success_floor: float = 0.4
    readiness: str = "min"
    eta: float = 0.15
    eta_secondary: float = 0.05
    zpd_delta: float = 0.1
    zpd_sigma: float = 0.15
    learn_on_failure: float = 0.5
    floor: float = 0.05
    tau_days: float = 14.0
    tau_growth: float = 0.25
    retention: float = 0.8
    consolidation: float = 0.1
    # output
    snapshot_every_days: int = 7

    def __post_init__(self) -> None:
        problems = []
        for name in ("n_topics", "n_items", "n_users", "days", "user_chunk"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.n_topics < 2:
            problems.append("n_topics must be >= 2")
        if self.n_topics < self.max_interests:  # interests are distinct topics
            problems.append(f"n_topics must be >= max_interests ({self.max_interests}; got {self.n_topics})")
        if not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be an integer >= 0 (got {self.seed!r})")
        try:
            datetime.fromisoformat(self.start)  # as generate.start_micros reads it
        except (ValueError, TypeError):
            problems.append(f"start must be an ISO date such as 2026-01-05 (got {self.start!r})")
        if self.readiness not in ("min", "mean"):
            problems.append(f"readiness must be 'min' or 'mean' (got {self.readiness!r})")
        if not self.languages or not self.kinds:
            problems.append("languages and kinds need at least one entry each")
        if set(self.kinds) - set(self.kind_seconds):
            problems.append(f"kind_seconds lacks {sorted(set(self.kinds) - set(self.kind_seconds))}")
        for name in ("new_item_fraction", "secondary_topic_prob", "p_explore", "file_prob", "quiz_rate", "floor", "retention", "consolidation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (got {getattr(self, name)})")
        if problems:
            raise ValueError("invalid SimConfig: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SimConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_overrides(self, **kwargs) -> SimConfig:
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})


PRESETS: dict[str, SimConfig] = {
    # tests: well under a second
    "tiny": SimConfig(n_topics=12, n_items=300, n_users=50, days=14, folders_per_user=1.0, folder_items=5.0),
    # demo default: a few simulated weeks
    "small": SimConfig(n_topics=40, n_items=5_000, n_users=2_000, days=28),
    "medium": SimConfig(n_topics=100, n_items=100_000, n_users=10_000, days=7, user_chunk=10_000),
    # benchmark scale: 100k users x 1M items, one simulated week
    "bench": SimConfig(n_topics=100, n_items=1_000_000, n_users=100_000, days=7, user_chunk=10_000),
}


def preset(name: str, **overrides) -> SimConfig:
    """A named preset with optional field overrides (None values are ignored)."""
    if name not in PRESETS:
        raise KeyError(f"unknown simulator preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name].with_overrides(**overrides)
