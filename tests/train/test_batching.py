import numpy as np
import pytest
from conftest import synthetic_sequences

from kt.train.batching import PaddedBatcher, batch_loader


@pytest.fixture(scope="module")
def seqs():
    return synthetic_sequences(90, min_len=1, max_len=75, seed=5)


def _rows(batcher, ids):
    """Flat source rows of each window, for comparing batch contents with the source."""
    w = batcher.windows
    return [np.arange(w.offsets[i], w.offsets[i + 1]) for i in ids]


def test_epoch_covers_every_window_once_with_exact_contents(seqs):
    b = PaddedBatcher(seqs, batch_size=16, max_len=20, seed=1)
    assert b.windows.num_interactions == seqs.num_interactions  # windowing loses nothing
    assert b.lengths.max() <= 20
    plan = b.shard()
    ids = np.concatenate(plan)
    assert sorted(ids.tolist()) == list(range(len(b.windows)))
    for window_ids in plan[:5]:
        batch = b.gather(window_ids)
        lengths = b.lengths[window_ids]
        assert batch.items.shape == (len(window_ids), lengths.max())  # padded to its own max, not to 20
        assert batch.mask.sum(1).tolist() == lengths.tolist()
        for row, src in enumerate(_rows(b, window_ids)):
            n = len(src)
            assert batch.items[row, :n].tolist() == b.windows.items[src].tolist()
            assert batch.concepts[row, :n].tolist() == b.windows.concepts[src].tolist()
            assert batch.responses[row, :n].tolist() == b.windows.responses[src].tolist()
            assert batch.items[row, n:].eq(0).all() and not batch.mask[row, n:].any()


def test_plan_is_deterministic_per_seed_and_epoch(seqs):
    a = PaddedBatcher(seqs, batch_size=8, max_len=20, seed=3)
    b = PaddedBatcher(seqs, batch_size=8, max_len=20, seed=3)
    same = [x.tolist() for x in a.plan(0)] == [x.tolist() for x in b.plan(0)]
    assert same
    assert [x.tolist() for x in a.plan(0)] != [x.tolist() for x in a.plan(1)]
    c = PaddedBatcher(seqs, batch_size=8, max_len=20, seed=4)
    assert [x.tolist() for x in a.plan(0)] != [x.tolist() for x in c.plan(0)]


def test_bucketing_pads_less_than_random_batches(seqs):
    b = PaddedBatcher(seqs, batch_size=8, max_len=75, seed=0, chunk_batches=20)
    padded = sum(len(ids) * b.lengths[ids].max() for ids in b.plan(0))
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(b.lengths))
    random_padded = sum(len(ids) * b.lengths[ids].max() for ids in np.array_split(perm, len(b.plan(0))))
    assert padded < 0.8 * random_padded


def test_token_budget_caps_padded_tokens(seqs):
    b = PaddedBatcher(seqs, max_len=20, token_budget=100, seed=0)
    plan = b.plan(0)
    assert sorted(np.concatenate(plan).tolist()) == list(range(len(b.windows)))
    for ids in plan:
        assert len(ids) * b.lengths[ids].max() <= 100


def test_balanced_tokens_even_out_interactions_per_step(seqs):
    """Fixed window counts give length-sorted batches of very different sizes; balancing gives
    each step about batch_size x mean length interactions, with batch_size windows on average."""
    kw = dict(batch_size=8, max_len=75, seed=0, chunk_batches=20)
    fixed, balanced = PaddedBatcher(seqs, **kw), PaddedBatcher(seqs, balance_tokens=True, **kw)
    assert balanced.token_budget == round(8 * balanced.lengths.mean())
    # chunks carry their partial last batch forward: at most one batch under half the budget
    real = [balanced.lengths[ids].sum() for ids in balanced.plan(0)]
    assert sum(r < balanced.token_budget / 2 for r in real) <= 1
    assert sorted(np.concatenate(balanced.plan(0)).tolist()) == list(range(len(balanced.windows)))

    def spread(b):
        real = np.sort([b.lengths[ids].sum() for ids in b.plan(0)])[1:].astype(float)  # the epoch's last may be partial
        return real.std() / real.mean()

    assert spread(balanced) < 0.5 * spread(fixed)
    assert abs(len(balanced.plan(0)) - len(fixed.plan(0))) <= 0.25 * len(fixed.plan(0))
    # an explicit budget wins over balancing
    assert PaddedBatcher(seqs, max_len=20, token_budget=100, balance_tokens=True).token_budget == 100


def test_min_len_drops_windows_without_a_target(seqs):
    b = PaddedBatcher(seqs, batch_size=8, max_len=20, min_len=2)
    assert b.lengths.min() >= 2


def test_ranks_split_batches_like_a_distributed_sampler(seqs):
    full = PaddedBatcher(seqs, batch_size=7, max_len=20, seed=2).plan(0)
    shards = [PaddedBatcher(seqs, batch_size=7, max_len=20, seed=2, rank=r, world_size=3).shard(0) for r in range(3)]
    assert len({len(s) for s in shards}) == 1  # equal step counts, so DDP never hangs
    seen = np.concatenate([np.concatenate(s) for s in shards])
    assert set(seen.tolist()) == set(np.concatenate(full).tolist())
    r0 = {tuple(x) for x in shards[0]}
    r1 = {tuple(x) for x in shards[1]}
    assert r0 != r1
    # evaluation shares are an exact partition (no wrap-around duplicates)
    ev = [PaddedBatcher(seqs, 7, 20, shuffle=False, rank=r, world_size=3, pad_shares=False).shard() for r in range(3)]
    ev_ids = np.concatenate([np.concatenate(s) for s in ev if s])
    assert sorted(ev_ids.tolist()) == list(range(len(PaddedBatcher(seqs, 7, 20).windows)))


def test_loader_with_workers_yields_the_same_batches(seqs):
    b = PaddedBatcher(seqs, batch_size=16, max_len=20, seed=1)
    inline = [(batch.items.clone(), ids.tolist()) for batch, ids in batch_loader(b, 0)]
    workers = [(batch.items.clone(), ids.tolist()) for batch, ids in batch_loader(b, 1)]
    assert [i for _, i in inline] == [i for _, i in workers]
    assert all((a == c).all() for (a, _), (c, _) in zip(inline, workers, strict=True))


def test_eval_mask_follows_windows():
    from kt.data.sequences import KTSequences

    s = KTSequences.from_lists(["a"], [[1, 2, 3, 4, 5]], [[1, 1, 2, 2, 1]], [[1, 0, 1, 1, 0]],
                               eval_mask=[[False, False, True, False, True]])
    b = PaddedBatcher(s, batch_size=4, max_len=3, shuffle=False)
    ids = b.shard()[0]
    assert b.eval_mask(ids).tolist() == [[False, False, True], [False, True, False]]
