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
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a KT model (MLflow-tracked, registered)")
    p.add_argument("--data", required=True, help="assist2015 | assist2009 | statics2011 | sim | WORLD_DIR")
    p.add_argument("--model", help="registered model name (e.g. dkt, sakt, akt); default: from --config, else dkt")
    p.add_argument("--config", type=Path, help="YAML or JSON file of TrainConfig fields")
    p.add_argument("--fold", type=int, default=0,
                   help="validation fold (0-4) for the benchmark datasets; a world has one split (0)")
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
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:
        raise CLIError(f"{path}: cannot parse config ({' '.join(str(exc).split())})") from None
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
    from kt.config import usable_device
    from kt.train.trainer import check_model_params

    # before the data is loaded and an MLflow run opened: a typo should not leave a FAILED run
    try:
        check_model_params(config)
        usable_device(config.device)
    except ValueError as exc:
        raise CLIError(f"{args.config or 'config'}: {exc}") from None
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


def run(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.config import Settings

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch_torchrun(args)

    settings = Settings.from_env()
    config = build_config(args, settings)
    rank = int(os.environ.get("RANK", 0))
    is_main = rank == 0

    from kt.data.datasets import DatasetError
    from kt.data.schema import DataError
    from kt.train.pipeline import format_metrics_table, run_training, summary_rows

    try:
        outcome = run_training(
            settings, config, args.data, fold=args.fold, out=args.out, resume=args.resume,
            track=not args.no_mlflow, register=not args.no_register,
        )
    except (DatasetError, DataError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None
    if not is_main:
        return 0
    result = outcome.result
    print(format_metrics_table(summary_rows(result)))
    print(f"best epoch: {result.best_epoch + 1} of {result.epochs_run} run")  # best_epoch counts from 0
    if outcome.run_id:
        print(f"mlflow run id: {outcome.run_id}")
    if outcome.model_version is not None:
        print(f"registered: models:/{settings.registered_model}/{outcome.model_version}")
    print(f"checkpoint: {result.checkpoint_path}")
    print(f"report: {outcome.report_path}")
    return 0
