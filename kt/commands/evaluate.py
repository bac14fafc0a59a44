"""``kt evaluate``: score trained models on a dataset's test splits under pyKT's protocol.

    kt evaluate --data assist2015 --checkpoint runs/dkt/best.pt [--fold k]
    kt evaluate --data assist2015 --model-uri models:/ktpath-kt@champion
    kt evaluate --data assist2015 --all-folds runs/dkt_folds/      # 5 fold models -> mean ± std

One model is scored on ``test`` and, where the dataset has one, ``test_window`` (pyKT's
``test_window_sequences.csv``). ``--all-folds DIR`` finds every ``best.pt`` under DIR (one per
fold; the fold is read from each checkpoint), scores each on its fold's test splits, and
reports mean ± std over folds (population std, ``ddof=0``). This is pyKT's protocol on
ASSIST2015, and the same on assist2009 (AKT folds) and statics2011 (DKVMN files). The table is
printed and everything is written to a JSON file (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

METRICS = ("auc", "acc", "rmse", "logloss", "ece")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="score trained KT models on test splits (pyKT protocol)")
    p.add_argument("--data", required=True, help="assist2015 | assist2009 | statics2011 | sim | WORLD_DIR")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="a ktpath checkpoint (.pt)")
    src.add_argument("--model-uri", help="an MLflow model URI, e.g. models:/ktpath-kt@champion")
    src.add_argument("--all-folds", type=Path, metavar="DIR", help="directory with one best.pt per fold")
    p.add_argument("--fold", type=int, help="fold whose test split to use (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--device", help="auto | cpu | cuda (default: Settings.device)")
    p.add_argument("--out", type=Path, help="JSON report path")
    p.add_argument("--plot", action="store_true", help="also write reliability PNGs beside the JSON")
    p.set_defaults(func=run)


def _vocab_difference(mine, theirs) -> str:
    common = len(set(mine.tokens) & set(theirs.tokens))
    if len(mine) == len(theirs) == common:
        return "same ids in another order"
    return f"{len(mine)} ids vs {len(theirs)}, {common} in common"


def _same_source(a: str | None, b: str | None) -> bool:
    return bool(a and b) and Path(a).resolve() == Path(b).resolve()


def _check_trained_on(loaded, splits, where: str) -> None:
    """Refuse a model trained on other data. Index ranges can fit by chance (same catalog sizes),
    and then index 7 means another item or concept: the scores would mean nothing. Both the
    vocabularies (where both sides have them: worlds) and the dataset names (where both have
    one) must match; a world counts as the same when its folder is (``sim`` is the world of
    the time's KT_WORLD_DIR). Two worlds with the same ids (simulator presets) differ by name."""
    from kt.cli import CLIError
    from kt.train.trainer import split_vocabs

    run = loaded.meta.get("meta") or {}
    trained_on, trained_source = run.get("data"), (run.get("dataset") or {}).get("source")
    data_meta = getattr(splits, "meta", None) or {}
    data_name, data_source = data_meta.get("name"), data_meta.get("source")
    differ = [f"{label} vocabulary differs: {_vocab_difference(mine, theirs)}"
              for label, mine, theirs in zip(("item", "concept"), (loaded.item_vocab, loaded.concept_vocab),
                                             split_vocabs(splits), strict=True)
              if mine is not None and theirs is not None and mine.tokens != theirs.tokens]
    if (not differ and trained_on is not None and data_name is not None and trained_on != data_name
            and not _same_source(trained_source, data_source)):
        differ = ["another dataset"]
    if not differ:
        return
    origin = "other data"
    if trained_on:
        origin = repr(trained_on)
        if trained_source and trained_source != trained_on:
            origin += f" ({trained_source})"
    target = repr(data_name) if data_name else "this data"
    raise CLIError(f"{where}: trained on {origin}, not on {target} ({'; '.join(differ)}); "
                   "evaluate it on the data it was trained on")


def _check_fits(loaded, seqs, name: str, where: str) -> None:
    from kt.cli import CLIError

    cfg = loaded.model.config
    if len(seqs) and (int(seqs.items.max(initial=0)) > cfg.num_items or int(seqs.concepts.max(initial=0)) > cfg.num_concepts):
        raise CLIError(
            f"{where}: model has {cfg.num_items} items / {cfg.num_concepts} concepts but {name} uses "
            f"up to {int(seqs.items.max())} / {int(seqs.concepts.max())}: trained on another dataset?"
        )


def score_model(loaded, splits, *, batch_size: int, device: str, where: str, plot_dir: Path | None = None,
                tag: str = "") -> dict[str, dict[str, float]]:
    from kt.train.evaluate import evaluate
    from kt.train.metrics import plot_reliability

    _check_trained_on(loaded, splits, where)
    loaded.model.to(device)
    out: dict[str, dict[str, float]] = {}
    for name in ("test", "test_window"):
        seqs = getattr(splits, name, None)
        if seqs is None or not len(seqs):
            continue
        _check_fits(loaded, seqs, name, where)
        res = evaluate(loaded.model, seqs, batch_size, device=device, return_predictions=plot_dir is not None)
        if plot_dir is not None:
            plot_reliability(res.pop("y_true"), res.pop("y_prob"), plot_dir / f"reliability_{tag}{name}.png",
                             title=f"{loaded.meta.get('model_name')} {name}")
        out[name] = res
    return out


def aggregate(per_fold: dict[int, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {metric: {"mean", "std", "n_folds"}}} over folds."""
    import numpy as np

    splits = sorted({s for res in per_fold.values() for s in res})
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in splits:
        out[split] = {}
        for m in METRICS:
            vals = np.array([res[split][m] for res in per_fold.values() if split in res], dtype=float)
            out[split][m] = {"mean": float(vals.mean()), "std": float(vals.std()), "n_folds": int(len(vals))}
    return out


def format_table(title: str, rows: dict[str, dict[str, Any]]) -> str:
    lines = [title, f"{'split':<22}" + "".join(f"{m:>20}" for m in METRICS)]
    for name, res in rows.items():
        cells = []
        for m in METRICS:
            v = res.get(m)
            cells.append(f"{v['mean']:.4f} ± {v['std']:.4f}" if isinstance(v, dict) else f"{v:.4f}")
        lines.append(f"{name:<22}" + "".join(f"{c:>20}" for c in cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.config import Settings, usable_device
    from kt.data.datasets import DatasetError, load_kt_dataset
    from kt.data.schema import DataError
    from kt.models.checkpoint import load_checkpoint

    settings = Settings.from_env()
    try:
        device = usable_device(args.device or settings.device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None

    def load_data(fold: int):
        try:
            return load_kt_dataset(args.data, settings, fold=fold)
        except (DatasetError, DataError, FileNotFoundError) as exc:
            raise CLIError(str(exc).splitlines()[0]) from None

    def load_ckpt(path: Path):
        try:
            return load_checkpoint(path)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise CLIError(str(exc).splitlines()[0]) from None

    if args.all_folds is not None:
        if not args.all_folds.is_dir():
            raise CLIError(f"--all-folds {args.all_folds}: not a directory")
        paths = sorted(args.all_folds.rglob("best.pt"))
        if not paths:
            raise CLIError(f"--all-folds {args.all_folds}: no best.pt found below it")
        per_fold: dict[int, dict[str, dict[str, float]]] = {}
        sources: dict[int, str] = {}
        plot_dir = (args.out.parent if args.out else args.all_folds) if args.plot else None
        models = {}
        for path in paths:  # check the set of folds before spending time on scoring
            loaded = load_ckpt(path)
            fold = int(loaded.meta.get("meta", {}).get("fold", 0))
            if fold in models:
                raise CLIError(f"{path}: fold {fold} also in {sources[fold]}; one best.pt per fold under --all-folds")
            models[fold], sources[fold] = loaded, str(path)
        for fold, loaded in sorted(models.items()):
            res = score_model(loaded, load_data(fold), batch_size=args.batch_size, device=device,
                              where=sources[fold], plot_dir=plot_dir, tag=f"fold{fold}_")
            per_fold[fold] = res
            print(f"fold {fold}: " + ", ".join(f"{s} auc {m['auc']:.4f}" for s, m in res.items()), file=sys.stderr)
        summary = aggregate(per_fold)
        report = {"data": args.data, "folds": {str(k): v for k, v in sorted(per_fold.items())},
                  "checkpoints": {str(k): v for k, v in sorted(sources.items())}, "summary": summary}
        title = f"{args.data}: {len(per_fold)} fold model(s), mean ± std"
        print(format_table(title, summary))
        out = args.out or args.all_folds / f"eval_{Path(args.data).name}.json"
    else:
        if args.checkpoint is not None:
            loaded, where = load_ckpt(args.checkpoint), str(args.checkpoint)
        else:
            from kt.train.tracking import ModelURIError, load_model_uri

            try:
                loaded = load_model_uri(settings, args.model_uri)
            except ModelURIError as exc:  # malformed or not found: names the accepted forms
                raise CLIError(str(exc)) from None
            except Exception as exc:  # MLflow raises many types for a store it cannot read; report one line
                raise CLIError(f"{args.model_uri}: {str(exc).splitlines()[0]}") from None
            where = args.model_uri
        fold = args.fold if args.fold is not None else int(loaded.meta.get("meta", {}).get("fold", 0))
        out = args.out or (
            args.checkpoint.parent / f"eval_{Path(args.data).name}_fold{fold}.json" if args.checkpoint
            else settings.home / "artifacts" / "eval" / f"eval_{Path(args.data).name}_fold{fold}.json"
        )
        res = score_model(loaded, load_data(fold), batch_size=args.batch_size, device=device, where=where,
                          plot_dir=out.parent if args.plot else None)
        report = {"data": args.data, "fold": fold, "source": where, "model": loaded.meta.get("model_name"),
                  "results": res}
        print(format_table(f"{args.data} fold {fold}: {loaded.meta.get('model_name')} from {where}", res))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")
    return 0
