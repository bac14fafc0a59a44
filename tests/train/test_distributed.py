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


def test_two_process_gloo_training(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo", MLFLOW_DISABLE_TELEMETRY="true")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(WORKER), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

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
