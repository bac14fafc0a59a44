"""DKT-F's per-concept history features equal a plain loop over each sequence."""

from __future__ import annotations

import torch

from kt.models.dkt_forget import concept_history, log2_bucket


def _loop(concepts: list[int], responses: list[int]) -> dict[str, list[int]]:
    out = {"trials": [], "correct": [], "gap": [], "last": []}
    seen: dict[int, list[tuple[int, int]]] = {}
    for t, (c, r) in enumerate(zip(concepts, responses, strict=True)):
        past = seen.get(c, [])
        out["trials"].append(len(past))
        out["correct"].append(sum(rr for _, rr in past))
        out["gap"].append(t - past[-1][0] if past else 0)
        out["last"].append(past[-1][1] + 1 if past else 0)
        seen.setdefault(c, []).append((t, r))
    return out


def test_concept_history_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    concepts = torch.randint(1, 5, (4, 30), generator=g)  # few concepts: long runs of repeats
    responses = torch.randint(0, 2, (4, 30), generator=g)
    concepts[2, 20:] = 0  # a padded row
    responses[2, 20:] = 0
    got = concept_history(concepts, responses)
    for i in range(4):
        want = _loop(concepts[i].tolist(), responses[i].tolist())
        for key, values in want.items():
            real = 20 if i == 2 else 30
            assert got[key][i, :real].tolist() == values[:real], (i, key)


def test_log2_buckets():
    x = torch.tensor([0, 1, 2, 3, 4, 7, 8, 1000])
    assert log2_bucket(x, 8).tolist() == [0, 1, 2, 2, 3, 3, 4, 7]

