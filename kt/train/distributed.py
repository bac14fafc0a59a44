"""torch.distributed glue: process group from the torchrun environment, rank helpers, gathers.

Launch with ``torchrun --nproc_per_node=N -m kt.cli train ...`` (or ``kt train --nproc N``,
which execs torchrun). torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; multi-node works the same way with ``--nnodes``/``--rdzv-endpoint``. NCCL is used
on CUDA, gloo on CPU. Without those variables everything runs as a single process.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_dist_info() -> DistInfo:
    """Rank/world from the torchrun environment (single process when unset)."""
    return DistInfo(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by the environment, if any.

    device_type: "cuda" selects NCCL and pins this process to ``cuda:LOCAL_RANK``; anything
    else uses gloo. Idempotent: an existing process group is reused.
    """
    info = env_dist_info()
    if not info.enabled:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=info.local_rank)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def gather_concat(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate each array across ranks in rank order (every rank gets the result).

    Used for validation: each rank scores a disjoint share, then AUC is computed over the
    full set, which an all-reduce of per-rank AUCs could not give.
    """
    if not is_distributed():
        return arrays
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, arrays)
    return tuple(np.concatenate([g[i] for g in gathered]) for i in range(len(arrays)))


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (every rank gets the list; ``[obj]`` without DDP)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(values: list[float], device: torch.device | str = "cpu") -> list[float]:
    """Sum scalars across ranks (train loss and counts)."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (for launching local process groups)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
