"""Learning paths of curated bundles: Pixie candidates, prerequisites, targets, bundles, paths.

Depends only on the :class:`LearnerModel` protocol (topic mastery + predicted success), never on a
particular KT model or on the simulator.
"""

from kt.planner.bundles import Bundle, BundleItem
from kt.planner.catalog import Catalog, CatalogError
from kt.planner.config import PlannerConfig
from kt.planner.graph import ItemFolderGraph
from kt.planner.path import LearningPath, Planner
from kt.planner.pixie import PixieConfig, WalkResult, pixie_walk
from kt.planner.prerequisites import PrerequisiteGraph, edge_precision_recall, learn_prerequisites
from kt.planner.protocol import LearnerModel
from kt.planner.render import render_path

__all__ = [
    "Bundle", "BundleItem", "Catalog", "CatalogError", "ItemFolderGraph", "LearnerModel", "LearningPath",
    "PixieConfig", "Planner", "PlannerConfig", "PrerequisiteGraph", "WalkResult", "edge_precision_recall",
    "learn_prerequisites", "pixie_walk", "render_path",
]  # fmt: skip
