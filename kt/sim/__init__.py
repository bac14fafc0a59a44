"""Learner simulator: a seeded LINER-like world (topic DAG, multilingual catalog, folders,
users with latent per-topic mastery) written in the data contract, plus :class:`LearnerEnv`
to evaluate mastery estimates and learning-path policies against the true state.

Equations and parameters: docs/simulator.md.
"""

from kt.sim.config import PRESETS, SimConfig, preset
from kt.sim.env import LearnerEnv, read_true_mastery
from kt.sim.generate import WorldSummary, generate_world

__all__ = ["PRESETS", "LearnerEnv", "SimConfig", "WorldSummary", "generate_world", "preset", "read_true_mastery"]
