"""Named datasets: shapes of the benchmark splits, the simulator/world path, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kt.config import Settings
from kt.data.datasets import DatasetError, load_kt_dataset, split_users

SETTINGS = Settings()
needs_data = pytest.mark.skipif(
    not Path(SETTINGS.datasets_dir).is_dir(), reason=f"shared KT datasets not found at {SETTINGS.datasets_dir}"
)


@needs_data
def test_assist2015_pykt_protocol():
    sp = load_kt_dataset("assist2015", SETTINGS, fold=2)
    assert set(sp.train.folds) == {0, 1, 3, 4} and set(sp.valid.folds) == {2}
    assert len(set(sp.valid.user_ids)) == 3_055
    assert len(set(sp.train.user_ids)) + len(set(sp.valid.user_ids)) == 15_275
    assert sp.train.num_interactions + sp.valid.num_interactions == 544_331  # windows; 544,339 unwindowed
    assert (len(set(sp.test.user_ids)), sp.test.num_interactions) == (3_818, 138_458)
    assert sp.test_window is not None and sp.test_window.eval_mask.sum() == 138_458
    assert sp.train.num_concepts == sp.train.num_items == 100 and not sp.train.has_item_ids
    assert sp.meta["has_item_ids"] is False


@needs_data
def test_assist2009_akt_folds():
    sp = load_kt_dataset("assist2009", SETTINGS, fold=0)
    assert (len(sp.train), len(sp.valid), len(sp.test)) == (2_491, 830, 830)
    assert sp.test.num_interactions == 60_915 and sp.valid.num_interactions == 61_280
    assert (sp.train.num_items, sp.train.num_concepts) == (16_891, 110)
    assert not set(sp.test.user_ids) & set(sp.train.user_ids)


@needs_data
def test_statics2011_dkvmn_with_qmatrix_concepts():
    sp = load_kt_dataset("statics2011", SETTINGS, fold=0)
    assert (len(sp.train), len(sp.valid), len(sp.test)) == (193, 36, 104)
    total = sp.train.num_interactions + sp.valid.num_interactions + sp.test.num_interactions
    assert total == 189_297
    assert (sp.train.num_items, sp.train.num_concepts) == (1_223, 98)
    assert sp.train.concepts.min() >= 1 and sp.train.concepts.max() <= 98
    assert not np.array_equal(sp.train.items, sp.train.concepts)


def test_world_dataset_split_is_deterministic(world_dir, tmp_path):
    settings = Settings(home=tmp_path, world_dir=world_dir)
    a = load_kt_dataset("sim", settings)
    b = load_kt_dataset(str(world_dir), settings)
    n_users = len(a.train) + len(a.valid) + len(a.test)
    assert n_users == 2
    assert list(a.train.user_ids) == list(b.train.user_ids)
    report = a.meta["outcome_report"]
    # e1 understood (read 0.9), e2 bounced, e3 quiz correct, e4 ambiguous -> dropped and counted
    assert report.n_interactions == 3 and report.n_dropped_ambiguous == 1
    assert a.meta["num_items"] == 3 and a.meta["num_concepts"] == 3


def test_split_users_fractions_and_seed():
    ids = np.array([f"u{i}" for i in range(100)], dtype=object)
    tr, va, te = split_users(ids, seed=1)
    assert (len(tr), len(va), len(te)) == (70, 15, 15)
    assert len(set(tr) | set(va) | set(te)) == 100
    rev = ids[::-1]  # same users in another order -> same split
    assert set(rev[split_users(rev, seed=1)[0]]) == set(ids[tr])
    assert not np.array_equal(split_users(ids, seed=2)[0], tr)


def test_missing_dataset_dir_names_the_setting(tmp_path):
    with pytest.raises(DatasetError, match="KT_DATASETS_DIR"):
        load_kt_dataset("assist2015", Settings(home=tmp_path, datasets_dir=tmp_path / "nope"))
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_kt_dataset("mnist", Settings(home=tmp_path))


def test_world_name_does_not_depend_on_how_its_path_is_typed(world_dir, make_world, tmp_path, monkeypatch):
    settings = Settings(home=tmp_path, world_dir=world_dir)
    monkeypatch.chdir(tmp_path)
    # the settings' world, by name or by a relative path (was tagged data=world)
    assert load_kt_dataset("sim", settings).meta["name"] == "sim"
    assert load_kt_dataset("world", settings).meta["name"] == "sim"
    assert load_kt_dataset("./world/", settings).meta["name"] == "sim"
    # another world: one name, its resolved path, however it is typed
    other = make_world()
    names = {load_kt_dataset(p, settings).meta["name"] for p in (other.name, f"./{other.name}/", str(other))}
    assert names == {str(other.resolve())}
    assert load_kt_dataset(other.name, settings).meta["source"] == str(other.resolve())


def test_world_refuses_a_fold_other_than_0(world_dir, tmp_path):
    settings = Settings(home=tmp_path, world_dir=world_dir)
    assert load_kt_dataset("sim", settings, fold=0).meta["fold"] == 0
    with pytest.raises(DatasetError, match="fold 7: a world has one train/valid/test split"):
        load_kt_dataset("sim", settings, fold=7)  # was ignored: a run named fold7 with fold 0's numbers
