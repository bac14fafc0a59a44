"""Shared fixtures: a small simulated world, its interactions, a DKT trained for a few epochs."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from kt.data.sequences import Vocab
from kt.models.base import build_model

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("WANDB_MODE", "disabled")

TINY_MODEL = dict(dim=16, hidden=16, num_heads=2, num_blocks=1, ff_dim=32, final_dim=32, max_len=64, dropout=0.0)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # per-event updates are tiny ops: intra-op threads only contend on the shared 2-core box
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    from kt.sim import generate_world, preset

    out = tmp_path_factory.mktemp("mastery_world")
    generate_world(preset("tiny", n_users=240, days=28), out)
    return out


@pytest.fixture(scope="session")
def items(world) -> pd.DataFrame:
    return pd.read_parquet(world / "items.parquet", columns=["content_id", "topics"])


@pytest.fixture(scope="session")
def topics(world) -> list[str]:
    return pd.read_parquet(world / "topics.parquet")["topic_id"].astype(str).tolist()


@pytest.fixture(scope="session")
def interactions(world) -> pd.DataFrame:
    from kt.mastery.quality import load_interactions

    return load_interactions(world)


@pytest.fixture(scope="session")
def vocabs(items, topics) -> tuple[Vocab, Vocab]:
    return Vocab(sorted(items["content_id"].astype(str))), Vocab(sorted(topics))


@pytest.fixture(scope="session")
def make_model(vocabs):
    """name -> a small untrained model (seeded) sized for the world's vocabularies, in eval mode."""

    def make(name: str, seed: int = 0):
        torch.manual_seed(seed)
        return build_model(name, num_items=len(vocabs[0]), num_concepts=len(vocabs[1]), **TINY_MODEL).eval()

    return make


@pytest.fixture(scope="session")
def trained(world, tmp_path_factory):
    """(checkpoint path, LoadedModel): DKT trained for a few epochs on the world."""
    from kt.config import Settings
    from kt.data.datasets import load_world_dataset
    from kt.models.checkpoint import load_checkpoint
    from kt.train.trainer import TrainConfig, train

    home = tmp_path_factory.mktemp("home")
    splits = load_world_dataset(Settings(home=home), world_dir=world)
    cfg = TrainConfig(model="dkt", model_params={"dim": 32, "hidden": 32}, max_epochs=6, device="cpu",
                      amp=False, batch_size=32, lr=3e-3, progress=False)  # fmt: skip
    result = train(cfg, splits, checkpoint_dir=home / "ckpt")
    return result.checkpoint_path, load_checkpoint(result.checkpoint_path)


