"""Typed configuration of mastery tracking: stage thresholds, confidence, representative panels.

Every number that turns model probabilities into the product's vocabulary ("mastered",
"needs review", ...) lives here, so the planner, the API, the batch scorer and the quality
report all judge with the same thresholds. See docs/mastery.md for the definitions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

DAY = 86_400.0

STAGES: tuple[str, ...] = ("new", "learning", "needs_review", "mastered")


@dataclass(frozen=True)
class StageThresholds:
    """When a topic is new / learning / needs review / mastered.

    min_obs: fewer interactions than this on the topic -> ``new``.
    mastered: mastery at or above this (and not due for review) -> ``mastered``.
    decay_margin: the current estimate is lower than the estimate right after the last
      practice of the topic by more than this -> ``needs_review``.
    review_half_lives: more than this many confidence half-lives since the last practice
      -> ``needs_review`` (time-based forgetting, for models that do not see time).
    """

    min_obs: int = 3
    mastered: float = 0.8
    decay_margin: float = 0.1
    review_half_lives: float = 2.0

    def __post_init__(self) -> None:
        if self.min_obs < 0:
            raise ValueError(f"StageThresholds.min_obs must be >= 0 (got {self.min_obs})")
        if not 0.0 <= self.mastered <= 1.0:
            raise ValueError(f"StageThresholds.mastered must be in [0, 1] (got {self.mastered})")
        if self.decay_margin < 0 or self.review_half_lives <= 0:
            raise ValueError("StageThresholds.decay_margin must be >= 0 and review_half_lives > 0")


@dataclass(frozen=True)
class MasteryConfig:
    """Mastery tracking settings.

    panel_size: items per topic in the representative panel (item-aware models only).
    evidence_prior: n0 in confidence = n / (n + n0) * 2^(-dt / half_life).
    half_life_days: the time after the last practice at which confidence halves.
    stages: the stage thresholds.
    progress_window: ``progress`` of a topic = its mastery right after its latest practice minus
      its mastery right after the practice this many practices earlier (NaN until the topic has
      this many plus one); learning progress in the sense of Clement et al. 2015 (ZPDES).
    offset_prior_sd: prior standard deviation (logits) of the per-(user, topic) offset fitted
      online to the residuals of the model's own predictions (``predict_success`` adds it);
      0 turns the offset off.
    offset_drift: variance (logits^2) the offset may drift by between two practices of the topic
      (a random walk, as a learner changes): recent outcomes weigh most, and the offset follows a
      learner who improves instead of freezing on an old average. Its mean is kept within +-4
      logits (``update_offset``).
    offset_difficulty_slope: logits per unit of catalog difficulty by which a prediction is
      spread around its topic's median item before its residual is taken (the planner's
      ``difficulty_slope``), so hard items failed are not read as a weak learner; used only
      when the catalog carries difficulties.
    """

    panel_size: int = 5
    evidence_prior: float = 5.0
    half_life_days: float = 7.0
    stages: StageThresholds = field(default_factory=StageThresholds)
    progress_window: int = 5
    offset_prior_sd: float = 0.5
    offset_drift: float = 1.0
    offset_difficulty_slope: float = 8.0

    def __post_init__(self) -> None:
        if self.panel_size < 1:
            raise ValueError(f"MasteryConfig.panel_size must be >= 1 (got {self.panel_size})")
        if self.evidence_prior <= 0 or self.half_life_days <= 0:
            raise ValueError("MasteryConfig.evidence_prior and half_life_days must be > 0")
        if self.progress_window < 1:
            raise ValueError(f"MasteryConfig.progress_window must be >= 1 (got {self.progress_window})")
        if self.offset_prior_sd < 0 or self.offset_drift < 0:
            raise ValueError("MasteryConfig.offset_prior_sd and offset_drift must be >= 0 "
                             f"(got {self.offset_prior_sd}, {self.offset_drift})")

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_days * DAY

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MasteryConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if isinstance(kw.get("stages"), dict):
            kw["stages"] = StageThresholds(**kw["stages"])
        return cls(**kw)
