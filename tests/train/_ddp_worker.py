"""One rank of the 2-process DDP test (run by torchrun from test_distributed.py).

Trains DKT on the tiny synthetic splits with checkpoint_dir=OUT/ck_rank<r> (only rank 0 may
write there), then records what this rank saw and its final weights under OUT.
"""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import make_splits  # noqa: E402

from kt.train.trainer import TrainConfig, train  # noqa: E402


def resume(out: Path) -> None:
    """3 epochs straight, and 1 epoch then resumed to 3, with dropout (each rank its own masks)."""
    rank = int(os.environ["RANK"])

    def config(epochs: int) -> TrainConfig:
        return TrainConfig(model="dkt", model_params={"dim": 16, "hidden": 16, "dropout": 0.3}, lr=1e-2,
                           batch_size=16, max_epochs=epochs, device="cpu", max_len=30, seed=7, progress=False)

    # a checkpoint folder per rank, as on nodes without a shared file system: only rank 0's gets
    # files, and the resumed run must still continue on every rank
    splits = make_splits()
    straight = train(config(3), splits, checkpoint_dir=out / f"straight_ck{rank}")
    train(config(1), splits, checkpoint_dir=out / f"resumed_ck{rank}")
    resumed = train(config(3), splits, checkpoint_dir=out / f"resumed_ck{rank}", resume=True)
    for name, res in (("straight", straight), ("resumed", resumed)):
        torch.save(res.model.state_dict(), out / f"{name}_weights_rank{rank}.pt")
        (out / f"{name}_rank{rank}.json").write_text(json.dumps([h["valid_auc"] for h in res.history]))


def main(out: Path) -> None:
    rank = int(os.environ["RANK"])
    model = os.environ.get("KT_TEST_MODEL", "dkt")
    params = {"dim": 16, "hidden": 16} if model == "dkt" else {"dim": 16}
    config = TrainConfig(model=model, model_params=params, lr=1e-2, batch_size=16,
                         max_epochs=2, device="cpu", max_len=30, seed=7, progress=False)
    res = train(config, make_splits(), checkpoint_dir=out / f"ck_rank{rank}")
    torch.save(res.model.state_dict(), out / f"weights_rank{rank}.pt")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "world_size": res.world_size,
        "windows_seen": res.windows_seen.tolist(),
        "valid_auc": [h["valid_auc"] for h in res.history],
        "test_auc": res.test_metrics["test"]["auc"],
        "test_n": res.test_metrics["test"]["n"],
    }))
    from kt.train.distributed import cleanup_distributed

    cleanup_distributed()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "resume":
        resume(Path(sys.argv[1]))
        from kt.train.distributed import cleanup_distributed

        cleanup_distributed()
    else:
        main(Path(sys.argv[1]))
