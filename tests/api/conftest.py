"""API fixtures: a tiny simulated world, a DKT trained for one epoch and promoted to champion
in a throwaway MLflow store, and apps over SQLite or a throwaway PostgreSQL server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("WANDB_MODE", "disabled")

from api_helpers import API_KEY, make_settings


def _train_and_register(settings, world_dir: Path, out: Path, seed: int) -> int:
    from kt.data.datasets import load_world_dataset
    from kt.train.tracking import MLflowTracker
    from kt.train.trainer import TrainConfig, train

    splits = load_world_dataset(settings, world_dir=world_dir)
    cfg = TrainConfig(model="dkt", model_params={"dim": 16}, max_epochs=1, batch_size=32, device="cpu",
                      amp=False, progress=False, seed=seed)
    result = train(cfg, splits, checkpoint_dir=out)
    tracker = MLflowTracker(settings, run_name=f"api-test-{seed}")
    version = tracker.register_checkpoint(result.checkpoint_path)
    tracker.finish()
    return version


@pytest.fixture(scope="session")
def served_home(tmp_path_factory):
    """(home, world_dir): a home whose MLflow registry has a promoted champion."""
    from kt.config import Settings
    from kt.sim.config import preset
    from kt.sim.generate import generate_world
    from kt.train.tracking import promote

    home = tmp_path_factory.mktemp("home")
    world_dir = home / "data" / "world"
    generate_world(preset("tiny"), world_dir)
    settings = Settings(home=home)
    version = _train_and_register(settings, world_dir, home / "ckpt1", seed=0)
    promote(settings, version=version)
    return home, world_dir


@pytest.fixture
def private_home(served_home, tmp_path):
    """A copy of the served home whose registry a test may change (promote new versions)."""
    home, world_dir = served_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    return copy, copy / "data" / "world"


@pytest.fixture
def loaded_db(served_home, db_url):
    """db_url with the tiny world loaded into it."""
    from kt.store import EventStore
    from kt.store.loader import load_world_into_store

    store = EventStore(db_url)
    load_world_into_store(store, served_home[1])
    store.close()
    return db_url


@pytest.fixture
def client(served_home, loaded_db):
    from fastapi.testclient import TestClient

    from kt.api import create_app

    app = create_app(make_settings(served_home[0], loaded_db))
    with TestClient(app, raise_server_exceptions=False, headers={"X-API-Key": API_KEY}) as c:
        yield c


@pytest.fixture
def live_db(private_home, tmp_path):
    """(home, SQLite URL) with the tiny world loaded: for tests that start `kt serve` as a process."""
    from kt.store import EventStore
    from kt.store.loader import load_world_into_store

    home, world_dir = private_home
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    store = EventStore(db_url)
    load_world_into_store(store, world_dir)
    store.close()
    return home, db_url
