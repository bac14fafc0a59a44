from __future__ import annotations

import pytest

from kt.data.io import load_world
from kt.planner import Catalog, ItemFolderGraph, Planner, PlannerConfig, PrerequisiteGraph
from kt.planner.evaluation import OracleLearner
from kt.sim import generate_world, preset
from kt.sim.env import LearnerEnv


@pytest.fixture(scope="package")
def tiny(tmp_path_factory):
    """A tiny simulated world, loaded, with its environment and a planner on its true DAG."""
    out = tmp_path_factory.mktemp("planner_world")
    generate_world(preset("tiny"), out)
    world = load_world(out)
    catalog = Catalog.from_world(world)
    graph = ItemFolderGraph.from_world(world, catalog)
    prereqs = PrerequisiteGraph.from_frame(world.prerequisites, world.topics["topic_id"])
    env = LearnerEnv.from_world(out)
    return {"dir": out, "world": world, "catalog": catalog, "graph": graph, "prereqs": prereqs, "env": env}


@pytest.fixture
def planner(tiny):
    return Planner(tiny["catalog"], tiny["graph"], tiny["prereqs"], PlannerConfig())


@pytest.fixture
def oracle(tiny):
    return OracleLearner(tiny["env"].fork())
