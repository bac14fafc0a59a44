"""A real 2-process DDP training (gloo, CPU) launched with torchrun on 127.0.0.1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from conftest import make_splits

from kt.train.batching import PaddedBatcher
from kt.train.distributed import free_port

WORKER = Path(__file__).with_name("_ddp_worker.py")


def _torchrun(*args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MLFLOW_DISABLE_TELEMETRY="true")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(WORKER), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_gloo_training(tmp_path):
    _torchrun(str(tmp_path))

    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    # each rank trained on its own share; together they cover every training window
    seen0, seen1 = set(r0["windows_seen"]), set(r1["windows_seen"])
    assert seen0 != seen1
    n_windows = len(PaddedBatcher(make_splits().train, 16, 30, min_len=2).windows)
    assert seen0 | seen1 == set(range(n_windows))
    # DDP keeps replicas identical; validation AUC is computed over the gathered full set
    w0 = torch.load(tmp_path / "weights_rank0.pt")
    w1 = torch.load(tmp_path / "weights_rank1.pt")
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    assert r0["valid_auc"] == r1["valid_auc"]
    assert r0["test_auc"] == r1["test_auc"] and r0["test_n"] == r1["test_n"]
    # the gathered test set counts every scored position exactly once
    assert r0["test_n"] == int((make_splits().test.windows(30).lengths - 1).sum())
    # only rank 0 writes checkpoints
    assert {p.name for p in (tmp_path / "ck_rank0").iterdir()} == {"best.pt", "last.pt"}
    assert not (tmp_path / "ck_rank1").exists() or not any((tmp_path / "ck_rank1").iterdir())


def test_a_resumed_two_process_run_continues_as_the_uninterrupted_one(tmp_path):
    import pytest

    from kt.train.trainer import TrainConfig, train

    _torchrun(str(tmp_path), "resume")
    assert not (tmp_path / "resumed_ck1" / "last.pt").exists()  # rank 1 resumed from rank 0's files
    for rank in (0, 1):
        straight = json.loads((tmp_path / f"straight_rank{rank}.json").read_text())
        resumed = json.loads((tmp_path / f"resumed_rank{rank}.json").read_text())
        assert len(straight) == 3 and resumed == straight  # every rank got its own dropout stream back
        w_straight = torch.load(tmp_path / f"straight_weights_rank{rank}.pt")
        w_resumed = torch.load(tmp_path / f"resumed_weights_rank{rank}.pt")
        for k in w_straight:
            assert torch.equal(w_straight[k], w_resumed[k]), k
    # the effective batch is one batch per process: one process may not resume a two-process run
    config = TrainConfig(model="dkt", model_params={"dim": 16, "hidden": 16, "dropout": 0.3}, lr=1e-2,
                         batch_size=16, max_epochs=4, device="cpu", max_len=30, seed=7, progress=False)
    with pytest.raises(ValueError, match="trained by 2 process"):
        train(config, make_splits(), checkpoint_dir=tmp_path / "resumed_ck0", resume=True)
