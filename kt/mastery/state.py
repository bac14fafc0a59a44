"""Per-user model states: find the batch dimension, stack/split users, (de)serialise.

A model's online state (``KTModel.init_state``) is a dict of tensors whose layout is the
model's business: DKT keeps (layers, B, H) LSTM states, the default window state keeps
(B, L) histories. The batch dimension is found by comparing ``init_state(1)`` with
``init_state(2)``, so users can be stacked into one batch and split back without any
per-model code.
"""

from __future__ import annotations

import io
import json

import numpy as np
import torch

from kt.models.base import KTModel, KTState


def batch_dims(model: KTModel) -> dict[str, int]:
    """key -> index of the user (batch) dimension of that state tensor."""
    one, two = model.init_state(1, device="cpu"), model.init_state(2, device="cpu")
    dims = {}
    for key, t1 in one.items():
        t2 = two[key]
        diff = [d for d in range(t1.dim()) if t1.shape[d] != t2.shape[d]]
        if len(diff) != 1:
            raise ValueError(f"cannot find the batch dimension of state {key!r} of model {model.name!r}")
        dims[key] = diff[0]
    return dims


def signature(state: KTState, dims: dict[str, int]) -> tuple:
    """Shape of the state without its batch dimension: states with equal signatures stack."""
    return tuple((k, tuple(s for d, s in enumerate(t.shape) if d != dims[k])) for k, t in sorted(state.items()))


def stack(states: list[KTState], dims: dict[str, int]) -> KTState:
    return {k: torch.cat([s[k] for s in states], dim=dims[k]) for k in states[0]}


def take(state: KTState, dims: dict[str, int], index: torch.Tensor | slice) -> KTState:
    """Users ``index`` of a batched state (a slice keeps views; a tensor gathers)."""
    out = {}
    for k, t in state.items():
        if isinstance(index, slice):
            sl = [slice(None)] * t.dim()
            sl[dims[k]] = index
            out[k] = t[tuple(sl)]
        else:
            out[k] = t.index_select(dims[k], index.to(t.device))
    return out


def split(state: KTState, dims: dict[str, int]) -> list[KTState]:
    n = next(iter(state.values())).shape[next(iter(dims.values()))]
    return [take(state, dims, slice(i, i + 1)) for i in range(n)]


def to_bytes(state: KTState) -> bytes:
    """A compact blob: a JSON header (key, dtype, shape) and the raw little-endian arrays."""
    header, chunks = [], []
    for k, t in state.items():
        a = t.detach().cpu().contiguous().numpy()
        header.append([k, a.dtype.str, list(a.shape)])
        chunks.append(a.tobytes())
    h = json.dumps(header).encode()
    buf = io.BytesIO()
    buf.write(len(h).to_bytes(4, "little"))
    buf.write(h)
    for c in chunks:
        buf.write(c)
    return buf.getvalue()


def from_bytes(blob: bytes, device: torch.device | str = "cpu") -> KTState:
    n = int.from_bytes(blob[:4], "little")
    header = json.loads(blob[4 : 4 + n])
    pos, out = 4 + n, {}
    for k, dtype, shape in header:
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        a = np.frombuffer(blob, dtype=dt, count=size // dt.itemsize if dt.itemsize else 0, offset=pos).reshape(shape)
        out[k] = torch.from_numpy(a.copy()).to(device)
        pos += size
    return out
