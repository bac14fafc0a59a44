"""All planner knobs in one typed dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from kt.planner.pixie import PixieConfig


@dataclass
class PlannerConfig:
    """Knobs of candidate generation, target selection and bundle assembly.

    Seeds and interests
      n_seeds: most recent highlights used as walk seeds. recency_half_life_days: seed and
      interest weights decay as 0.5 ** (age / half_life).
    Target topics
      mastered_threshold: mastery at or above which a topic needs no new bundle.
      ready_threshold: every prerequisite at or above this makes a topic "ready to learn"
        (prerequisites "mastered or nearly"). ready_min_obs: observations a topic's mastery needs
        behind it to count as mastered or as a satisfied prerequisite (fewer: the model's prior
        guess, no evidence; 0 = trust any reported mastery). unseen_mastery: mastery read for topics the learner
        model does not report. w_interest / w_readiness / w_review / w_goal / w_headroom: target
        score terms (headroom = 1 - mastery). interest_decay: share of a topic's interest its
        prerequisites inherit.
      review_first: put review bundles before new material in a path.
      min_progress: a topic whose mastery rose by less than this over the learner model's last
        practices of it (its ``progress`` column; models without one are never stalled) is
        *stalled*: practice there is not paying off now (an unmet prerequisite the model does
        not see, or nothing left at the right difficulty). Stalled topics are planned after every
        other target and are never swapped in as a prerequisite to strengthen. ``None``: off.
    Bundles
      band: desirable-difficulty band of predicted success (Bjork's desirable difficulties);
      band_aim: where in the band an item's relevance peaks, 0 = its hard edge (lowest predicted
        success), 0.5 = its centre; review items aim there too.
      widen_step / max_widen: how far the band grows, each side, when too few items fall in it.
      min_bundle / max_bundle: bundle size limits. mmr_lambda: relevance vs diversity trade-off
      of maximal marginal relevance (Carbonell & Goldstein 1998). sim_weights: item similarity as a
      weighted sum over (topic set Jaccard, same kind, difficulty closeness, shared folder).
      topic_pool: items drawn per target topic from the topic index (difficulty-stratified),
      fresh_pool: of which items with no folder edges yet (cold start) are guaranteed.
      review_slots: items of a bundle given to interleaved spaced review of the target's (and
      goals') practised prerequisite ancestors with the lowest confidence and mastery at least
      review_min_mastery (review maintains what is known).
      difficulty_slope: logits per unit of catalog difficulty used to spread the predictions of
      a learner model that is flat across a topic's items (:mod:`kt.planner.calibration`); 0 = off.
      w_walk: weight of the normalised Pixie score in an item's relevance. w_popularity: weight of
      the item's log folder degree (scaled to [0, 1]) in its relevance, a popularity prior. include_secondary:
      also offer items carrying the topic only as a secondary topic.
    Blocked topics
      blocked_success: when even the best candidate of a target has predicted success below
      this, the topic is out of reach (a prerequisite is weaker than its mastery suggests):
      the planner swaps in that target's weakest prerequisite instead (unless its mastery is
      at least solid_mastery, when the items are merely hard), at most max_substitutions times
      per request. A target with fewer than min_bundle candidates within the band widened by
      defer_widen is deferred behind the other targets (its items are all too easy or too hard
      right now).
    """

    n_seeds: int = 20
    recency_half_life_days: float = 7.0
    mastered_threshold: float = 0.8
    ready_threshold: float = 0.8
    ready_level_margin: float = 1.0
    ready_min_obs: int = 3
    unseen_mastery: float = 0.0
    w_interest: float = 1.0
    w_readiness: float = 1.0
    w_review: float = 1.5
    w_goal: float = 3.0
    w_headroom: float = 1.0
    interest_decay: float = 0.7
    review_first: bool = True
    min_progress: float | None = 0.05
    band: tuple[float, float] = (0.70, 0.85)
    band_aim: float = 0.0
    widen_step: float = 0.05
    max_widen: float = 0.4
    min_bundle: int = 3
    max_bundle: int = 10
    mmr_lambda: float = 0.7
    sim_weights: tuple[float, float, float, float] = (0.4, 0.2, 0.2, 0.2)
    topic_pool: int = 48
    fresh_pool: int = 8
    w_walk: float = 0.3
    w_popularity: float = 0.0
    include_secondary: bool = False
    blocked_success: float = 0.5
    solid_mastery: float = 0.95
    max_substitutions: int = 3
    defer_widen: float = 0.1
    review_slots: int = 1
    review_min_mastery: float = 0.5
    difficulty_slope: float = 8.0
    seed: int = 0
    pixie: PixieConfig = field(default_factory=PixieConfig)

    def __post_init__(self) -> None:
        lo, hi = self.band
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"PlannerConfig.band must satisfy 0 <= lo <= hi <= 1 (got {self.band})")
        if not 0.0 <= self.band_aim <= 1.0:
            raise ValueError(f"PlannerConfig.band_aim must be in [0, 1] (got {self.band_aim})")
        if not 1 <= self.min_bundle <= self.max_bundle:
            raise ValueError("PlannerConfig needs 1 <= min_bundle <= max_bundle")
        if isinstance(self.pixie, dict):
            self.pixie = PixieConfig(**self.pixie)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PlannerConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if "band" in d:
            d["band"] = tuple(d["band"])
        if "sim_weights" in d:
            d["sim_weights"] = tuple(d["sim_weights"])
        return cls(**d)

    def with_overrides(self, **kwargs) -> PlannerConfig:
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})
