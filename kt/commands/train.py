"""``kt train``: train a KT model, score it on test, track it in MLflow and register it.

    kt train --data assist2015 --model dkt [--config cfg.yaml] [--fold 0] [--epochs 200]
             [--device auto] [--out DIR] [--set lr=0.002 --set model_params.dim=128]
             [--resume] [--nproc 2] [--no-mlflow] [--no-register]

``--data`` is a named dataset (assist2015, assist2009, statics2011, sim) or a world directory.
``--config`` is a YAML/JSON mapping of :class:`kt.train.trainer.TrainConfig` fields (nested
``model_params``); flags override it. Multi-GPU / multi-node: run under torchrun
(``torchrun --nproc_per_node=2 -m kt.cli train ...``) or pass ``--nproc N`` to have this
command launch torchrun on this machine. Only rank 0 logs to MLflow and writes files.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a KT model (MLflow-tracked, registered)")
    p.add_argument("--data", required=True, help="assist2015 | assist2009 | statics2011 | sim | WORLD_DIR")
    p.add_argument("--model", help="registered model name (e.g. dkt, sakt, akt); default: from --config, else dkt")
    p.add_argument("--config", type=Path, help="YAML or JSON file of TrainConfig fields")
    p.add_argument("--fold", type=int, default=0, help="validation fold (0-4) for the benchmark datasets")
    p.add_argument("--epochs", type=int, help="max epochs (default 200, as pyKT)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: Settings.device)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (model_params.dim=64); value parsed as JSON when it can be")
    p.add_argument("--out", type=Path, help="output directory for checkpoints and reports")
    p.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    p.add_argument("--nproc", type=int, default=1, help="launch this many processes with torchrun (DDP)")
    p.add_argument("--no-mlflow", action="store_true", help="do not track the run in MLflow")
    p.add_argument("--no-register", action="store_true", help="track but do not register the model")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.set_defaults(func=run)


def load_config_file(path: Path) -> dict[str, Any]:
    from kt.cli import CLIError

    if not path.is_file():
        raise CLIError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:
        raise CLIError(f"{path}: cannot parse config ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CLIError(f"{path}: config must be a mapping of TrainConfig fields")
    return data


def _parse_set(items: list[str]) -> dict[str, Any]:
    from kt.cli import CLIError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(args: argparse.Namespace, settings) -> Any:
    from kt.cli import CLIError
    from kt.train.trainer import TrainConfig

    raw: dict[str, Any] = load_config_file(args.config) if args.config else {}
    flags = {
        "model": args.model, "max_epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "seed": args.seed, "patience": args.patience, "device": args.device,
    }
    raw = _merge(raw, {k: v for k, v in flags.items() if v is not None})
    raw = _merge(raw, _parse_set(args.set))
    raw.setdefault("device", settings.device)
    raw.setdefault("seed", settings.seed)
    if args.no_progress:
        raw["progress"] = False
    try:
        config = TrainConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{args.config or 'config'}: {exc}") from None
    from kt.models.base import available_models

    if config.model not in available_models():
        raise CLIError(f"unknown model {config.model!r}; available: {', '.join(available_models())}")
    return config


def _launch_torchrun(args: argparse.Namespace) -> int:
    """Re-run this command under torchrun with ``--nproc`` processes on this machine."""
    import subprocess

    argv = list(sys.argv[1:])
    cleaned: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        cleaned.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           "-m", "kt.cli", *cleaned]
    print("launching:", " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


def _plain_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of a dataset's meta (vocabularies travel separately)."""
    return {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool) or v is None}


def format_metrics_table(rows: dict[str, dict[str, float]]) -> str:
    cols = ("auc", "acc", "rmse", "logloss", "ece", "n")
    lines = [f"{'split':<14}" + "".join(f"{c:>10}" for c in cols)]
    for name, m in rows.items():
        cells = "".join(f"{m.get(c, float('nan')):>10.4f}" if c != "n" else f"{int(m.get(c, 0)):>10d}" for c in cols)
        lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.config import Settings

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args)

    settings = Settings.from_env()
    config = build_config(args, settings)
    rank = int(os.environ.get("RANK", 0))
    is_main = rank == 0

    from kt.data.datasets import DatasetError, load_kt_dataset
    from kt.data.schema import DataError

    try:
        splits = load_kt_dataset(args.data, settings, fold=args.fold)
    except (DatasetError, DataError, FileNotFoundError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None
    data_name = str(splits.meta.get("name", args.data))
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe_data = Path(data_name).name or "data"
    out = args.out or settings.home / "artifacts" / "train" / f"{safe_data}_{config.model}_fold{args.fold}_{stamp}"
    if args.resume and not (out / "last.pt").is_file():
        raise CLIError(f"--resume: no {out / 'last.pt'} to resume from (pass the run's --out)")

    from kt.train.tracking import MLflowTracker, system_info
    from kt.train.trainer import train

    tracker = None
    if is_main and not args.no_mlflow:
        tracker = MLflowTracker(
            settings, run_name=f"{config.model}-{safe_data}-fold{args.fold}",
            tags={"data": data_name, "model": config.model, "fold": str(args.fold)},
        )
        data_info = {"data": data_name, "fold": args.fold, "train_sequences": len(splits.train),
                     "train_interactions": splits.train.num_interactions,
                     "valid_interactions": splits.valid.num_interactions}
        tracker.log_params({**config.to_dict(), **data_info})
        tracker.set_tags({f"system.{k}": v for k, v in system_info().items()})
    meta = {"data": data_name, "fold": args.fold, "dataset": _plain_meta(splits.meta)}
    try:
        result = train(config, splits, tracker=tracker, checkpoint_dir=out, resume=args.resume, meta=meta)
    except ValueError as exc:
        if tracker is not None:
            tracker.finish("FAILED")
        raise CLIError(str(exc).splitlines()[0]) from None
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    finally:
        from kt.train.distributed import cleanup_distributed

        cleanup_distributed()
    if not is_main:
        return 0

    report = _report(result, out, data_name, args.fold, config)
    version = None
    if tracker is not None:
        tracker.set_tags({"system.device": result.device, "system.world_size": result.world_size})
        final = {f"{split}_{k}": v for split, m in result.test_metrics.items() for k, v in m.items()}
        final.update({"best_valid_auc": result.best_valid_auc, "best_epoch": result.best_epoch})
        tracker.log_metrics(final, step=result.best_epoch)
        for png in sorted(out.glob("reliability_*.png")):
            tracker.log_artifact(png, "plots")
        tracker.log_artifact(out / "metrics.json", "reports")
        if result.checkpoint_path is not None:
            tracker.log_artifact(result.checkpoint_path, "checkpoint")
            if not args.no_register:
                test_auc = result.test_metrics.get("test", {}).get("auc")
                version = tracker.register_checkpoint(
                    result.checkpoint_path,
                    tags={"data": data_name, "model": config.model, "fold": args.fold, "test_auc": test_auc},
                )
        tracker.finish()

    best_row = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    valid = {k.removeprefix("valid_"): v for k, v in best_row.items() if k.startswith("valid_")}
    valid["n"] = result.valid_size
    print(format_metrics_table({"valid (best)": valid} | result.test_metrics))
    print(f"best epoch: {result.best_epoch} of {result.epochs_run} run")
    if tracker is not None:
        print(f"mlflow run id: {tracker.run_id}")
    if version is not None:
        print(f"registered: models:/{settings.registered_model}/{version}")
    print(f"checkpoint: {result.checkpoint_path}")
    print(f"report: {report}")
    return 0


def _report(result, out: Path, data_name: str, fold: int, config) -> Path:
    from kt.train.metrics import plot_reliability

    out.mkdir(parents=True, exist_ok=True)
    for split, (y, p) in result.test_predictions.items():
        if len(y):
            plot_reliability(y, p, out / f"reliability_{split}.png", title=f"{config.model} {data_name} {split}")
    report = {
        "data": data_name, "fold": fold, "model": config.model, "config": config.to_dict(),
        "best_epoch": result.best_epoch, "best_valid_auc": result.best_valid_auc, "epochs_run": result.epochs_run,
        "test": result.test_metrics, "history": result.history, "device": result.device,
        "world_size": result.world_size,
        "checkpoint": str(result.checkpoint_path) if result.checkpoint_path else None,
    }
    path = out / "metrics.json"
    path.write_text(json.dumps(report, indent=2, default=float))
    return path
