"""Named KT datasets -> train / valid / test :class:`KTSequences`.

Benchmarks are read from ``Settings.datasets_dir`` (env ``KT_DATASETS_DIR``), never copied:

* ``assist2015`` (pyKT protocol, Liu et al. 2022): train = ``train_valid_sequences.csv`` folds != fold,
  valid = fold == fold, test = ``test_sequences.csv``, test_window = ``test_window_sequences.csv``.
  Concept-only: the concept is the item (``has_item_ids`` False).
* ``assist2009`` (AKT folds, Ghosh et al. 2020): ``train{k}/valid{k}/test{k}``, k = fold + 1; items =
  problem ids, concepts = skill ids.
* ``statics2011`` (DKVMN files, Zhang et al. 2017): ``train{k}/valid{k}`` and ``STATICS_test``; items =
  question (problem-step) ids, concepts = skills from ``Qmatrix.csv`` (row q-1 is question q, one-hot).
* ``sim`` or a path to a world directory: highlight events through the :class:`OutcomeRule`, users split
  deterministically 70/15/15 with a seed (one split: fold 0 only); item/concept vocabularies come from
  the catalog (items, topics). Named ``sim`` when it is ``Settings.world_dir``, else by its resolved
  path (:func:`dataset_name`), however the path was typed.

New datasets register a loader in ``DATASETS``; nothing dispatches on names with if/elif.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kt.config import Settings
from kt.data.formats import read_akt_file, read_dkvmn_file, read_pykt_file
from kt.data.outcome import OutcomeRule, events_to_interactions, interactions_to_sequences
from kt.data.sequences import KTSequences, Vocab


class DatasetError(ValueError):
    """A named dataset cannot be resolved or read (one-line message)."""


@dataclass
class KTSplits:
    train: KTSequences
    valid: KTSequences
    test: KTSequences
    test_window: KTSequences | None = None
    meta: dict = field(default_factory=dict)


def _dataset_dir(settings: Settings, folder: str, name: str) -> Path:
    path = Path(settings.datasets_dir) / folder
    if not path.is_dir():
        raise DatasetError(
            f"dataset {name!r} not found: {path} does not exist "
            f"(set KT_DATASETS_DIR / Settings.datasets_dir to the folder holding {folder}/)"
        )
    return path


def _check_fold(fold: int, n: int = 5) -> None:
    if not 0 <= fold < n:
        raise DatasetError(f"fold must be in 0..{n - 1}, got {fold}")


def load_assist2015(settings: Settings, fold: int = 0, **_: object) -> KTSplits:
    _check_fold(fold)
    d = _dataset_dir(settings, "assist2015_pykt", "assist2015")
    n_concepts = len(json.loads((d / "keyid2idx.json").read_text())["concepts"])
    train_valid = read_pykt_file(d / "train_valid_sequences.csv", num_concepts=n_concepts, num_items=n_concepts).seqs
    test = read_pykt_file(d / "test_sequences.csv", num_concepts=n_concepts, num_items=n_concepts).seqs
    window = read_pykt_file(d / "test_window_sequences.csv", num_concepts=n_concepts, num_items=n_concepts).seqs
    others = [f for f in range(5) if f != fold]
    return KTSplits(
        train=train_valid.by_fold(others),
        valid=train_valid.by_fold([fold]),
        test=test,
        test_window=window,
        meta={"name": "assist2015", "fold": fold, "num_items": n_concepts, "num_concepts": n_concepts,
              "has_item_ids": False, "protocol": "pyKT", "source": str(d)},
    )


def load_assist2009(settings: Settings, fold: int = 0, **_: object) -> KTSplits:
    _check_fold(fold)
    d = _dataset_dir(settings, "assist2009_pid_akt", "assist2009")
    k = fold + 1
    n_items = len(json.loads((d / "problems.json").read_text()))
    n_concepts = len(json.loads((d / "skill.json").read_text()))

    def read(split: str) -> KTSequences:
        return read_akt_file(d / f"assist2009_pid_{split}{k}.csv", num_items=n_items, num_concepts=n_concepts).seqs

    return KTSplits(
        train=read("train"), valid=read("valid"), test=read("test"),
        meta={"name": "assist2009", "fold": fold, "num_items": n_items, "num_concepts": n_concepts,
              "has_item_ids": True, "protocol": "AKT folds", "source": str(d)},
    )


def statics_item_to_concept(d: Path) -> np.ndarray:
    """(num_items+1,) concept index per question from Qmatrix.csv (row q-1 = question q; index 0 -> 0)."""
    q = np.loadtxt(d / "Qmatrix.csv", delimiter=",", dtype=np.int64, ndmin=2)
    if (q.sum(axis=1) != 1).any():
        raise DatasetError(f"{d / 'Qmatrix.csv'}: expected exactly one skill per question")
    return np.concatenate([[0], q.argmax(axis=1) + 1]).astype(np.int64)


def load_statics2011(settings: Settings, fold: int = 0, **_: object) -> KTSplits:
    _check_fold(fold)
    d = _dataset_dir(settings, "statics2011_dkvmn", "statics2011")
    k = fold + 1
    q2c = statics_item_to_concept(d)
    n_items, n_concepts = len(q2c) - 1, int(q2c.max())

    def read(name: str) -> KTSequences:
        return read_dkvmn_file(d / name, num_items=n_items, num_concepts=n_concepts, item_to_concept=q2c).seqs

    return KTSplits(
        train=read(f"STATICS_train{k}.csv"), valid=read(f"STATICS_valid{k}.csv"), test=read("STATICS_test.csv"),
        meta={"name": "statics2011", "fold": fold, "num_items": n_items, "num_concepts": n_concepts,
              "has_item_ids": True, "protocol": "DKVMN files", "source": str(d)},
    )


def split_users(user_ids: np.ndarray, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)):
    """Deterministic user split: sort ids, permute with ``seed``, cut by fractions -> 3 position arrays."""
    order = np.argsort(np.asarray(user_ids, dtype=str), kind="stable")
    perm = order[np.random.default_rng(seed).permutation(len(order))]
    n_train = int(round(fractions[0] * len(perm)))
    n_valid = int(round(fractions[1] * len(perm)))
    return np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_valid]), np.sort(perm[n_train + n_valid :])


def load_world_dataset(
    settings: Settings, fold: int = 0, *, world_dir: Path | None = None, rule: OutcomeRule | None = None,
    seed: int | None = None, **_: object,
) -> KTSplits:
    """Highlight logs of a world directory -> KT splits (one split by users: fold 0 only)."""
    from kt.data.io import load_world

    world_dir = Path(world_dir or settings.world_dir)
    if not world_dir.is_dir():
        raise DatasetError(f"world directory {world_dir} not found (generate one, or set KT_WORLD_DIR)")
    if fold != 0:  # a run named fold7 must not silently report fold 0's numbers
        raise DatasetError(f"fold {fold}: a world has one train/valid/test split by users (fold 0 only); "
                           "drop --fold")
    world_dir = world_dir.resolve()
    name = _world_name(world_dir, settings)
    # under torchrun every rank loads the world; one writes the quarantine (several would race on it)
    writes = int(os.environ.get("RANK", "0")) == 0
    world = load_world(world_dir, quarantine_dir=settings.quarantine_dir_for(world_dir) if writes else None)
    rule = rule or settings.outcome_rule()
    interactions, report = events_to_interactions(world.events, world.items, rule)
    item_vocab = Vocab(sorted(world.items["content_id"].astype(str)))
    concept_vocab = Vocab(sorted(world.topics["topic_id"].astype(str)))
    seqs, item_vocab, concept_vocab = interactions_to_sequences(interactions, item_vocab, concept_vocab)
    seed = settings.seed if seed is None else seed
    tr, va, te = split_users(seqs.user_ids, seed)
    return KTSplits(
        train=seqs.subset(tr), valid=seqs.subset(va), test=seqs.subset(te),
        meta={"name": name, "fold": fold,
              "num_items": len(item_vocab), "num_concepts": len(concept_vocab), "has_item_ids": True,
              "item_vocab": item_vocab, "concept_vocab": concept_vocab, "outcome_rule": rule.to_dict(),
              "outcome_report": report, "rejected_rows": world.n_rejected, "seed": seed, "source": str(world_dir)},
    )


DATASETS: dict[str, Callable[..., KTSplits]] = {
    "assist2015": load_assist2015,
    "assist2009": load_assist2009,
    "statics2011": load_statics2011,
    "sim": load_world_dataset,
}


def dataset_name(data: str | Path, settings: Settings) -> str:
    """The name runs and models are tagged with (``data``): a registered name as is; a world
    directory as ``sim`` when it is ``settings.world_dir``, else as its resolved path, so that
    ``data/world``, ``./data/world/`` and ``/abs/data/world`` are one dataset, not three."""
    if str(data) in DATASETS or not Path(data).is_dir():
        return str(data)
    return _world_name(Path(data), settings)


def _world_name(world_dir: Path, settings: Settings) -> str:
    path = world_dir.resolve()
    return "sim" if path == Path(settings.world_dir).resolve() else str(path)


def load_kt_dataset(name: str, settings: Settings | None = None, fold: int = 0, **kwargs) -> KTSplits:
    """Resolve a named dataset (see module doc) or a world directory path into KTSplits."""
    settings = settings or Settings.from_env()
    loader = DATASETS.get(name)
    if loader is not None:
        return loader(settings, fold, **kwargs)
    if Path(name).is_dir():
        return load_world_dataset(settings, fold, world_dir=Path(name), **kwargs)
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)} or a world directory path")
