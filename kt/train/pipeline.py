"""Train, score, track and register one model: the library behind ``kt train`` and ``kt demo``.

The CLI only parses flags into a :class:`TrainConfig`; everything a run does (load the data,
train with early stopping, write the report and reliability plots, log the MLflow run,
register the checkpoint) happens here, so any caller gets the same tracked result.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kt.config import Settings
from kt.train.trainer import TrainConfig, TrainResult, model_config_for_data, train


@dataclass
class TrainingOutcome:
    result: TrainResult
    out_dir: Path
    report_path: Path | None
    run_id: str | None
    model_version: int | None
    data_name: str


def default_out_dir(settings: Settings, data_name: str, model: str, fold: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    safe = Path(data_name).name or "data"
    return settings.home / "artifacts" / "train" / f"{safe}_{model}_fold{fold}_{stamp}"


def _plain_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of a dataset's meta (vocabularies travel separately)."""
    return {k: v for k, v in meta.items() if isinstance(v, str | int | float | bool) or v is None}


def run_training(
    settings: Settings,
    config: TrainConfig,
    data: str,
    *,
    fold: int = 0,
    out: Path | None = None,
    resume: bool = False,
    track: bool = True,
    register: bool = True,
    splits: Any = None,
) -> TrainingOutcome:
    """Train ``config`` on dataset ``data`` (a name or a world directory); see ``kt train --help``.

    Under torchrun only rank 0 tracks, writes reports and registers; the other ranks return
    an outcome without run id or version.
    """
    from kt.data.datasets import load_kt_dataset
    from kt.train.tracking import MLflowTracker, system_info

    if splits is None:
        splits = load_kt_dataset(data, settings, fold=fold)
    data_name = str(splits.meta.get("name", data))
    out = out or default_out_dir(settings, data_name, config.model, fold)
    if resume and not (out / "last.pt").is_file():
        raise ValueError(f"--resume: no {out / 'last.pt'} to resume from (pass the run's --out)")
    is_main = int(os.environ.get("RANK", 0)) == 0
    safe_data = Path(data_name).name or "data"
    # the model as it will be built: model_params holds only what was overridden (often {}), so the
    # run's params would not say what was trained; a bad value also fails here, before a run is opened
    model_config = model_config_for_data(config, splits)

    tracker = None
    if is_main and track:
        tracker = MLflowTracker(
            settings, run_name=f"{config.model}-{safe_data}-fold{fold}",
            tags={"data": data_name, "model": config.model, "fold": str(fold)},
        )
        tracker.log_params({
            **config.to_dict(), **{f"model.{k}": v for k, v in model_config.to_dict().items()},
            "data": data_name, "fold": fold, "train_sequences": len(splits.train),
            "train_interactions": splits.train.num_interactions,
            "valid_interactions": splits.valid.num_interactions,
            **{f"outcome_rule.{k}": v for k, v in (splits.meta.get("outcome_rule") or {}).items()},
        })
        tracker.set_tags({f"system.{k}": v for k, v in system_info().items()})
    meta = {"data": data_name, "fold": fold, "dataset": _plain_meta(splits.meta)}
    try:
        result = train(config, splits, tracker=tracker, checkpoint_dir=out, resume=resume, meta=meta)
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    finally:
        from kt.train.distributed import cleanup_distributed

        cleanup_distributed()
    if not is_main:
        return TrainingOutcome(result, out, None, None, None, data_name)

    report = write_report(result, out, data_name, fold, config)
    version = None
    if tracker is not None:
        tracker.set_tags({"system.device": result.device, "system.world_size": result.world_size})
        final = {f"{split}_{k}": v for split, m in result.test_metrics.items() for k, v in m.items()}
        final.update({"best_valid_auc": result.best_valid_auc, "best_epoch": result.best_epoch})
        tracker.log_metrics(final, step=result.best_epoch)
        for png in sorted(out.glob("reliability_*.png")):
            tracker.log_artifact(png, "plots")
        tracker.log_artifact(report, "reports")
        if result.checkpoint_path is not None:
            tracker.log_artifact(result.checkpoint_path, "checkpoint")
            if register:
                test_auc = result.test_metrics.get("test", {}).get("auc")
                version = tracker.register_checkpoint(
                    result.checkpoint_path,
                    tags={"data": data_name, "model": config.model, "fold": fold, "test_auc": test_auc},
                )
        tracker.finish()
    return TrainingOutcome(result, out, report, tracker.run_id if tracker else None, version, data_name)


def write_report(result: TrainResult, out: Path, data_name: str, fold: int, config: TrainConfig) -> Path:
    """metrics.json and one reliability plot per test split, in ``out``."""
    from kt.train.metrics import plot_reliability
    from kt.train.tracking import system_info

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
        # where and when: a report read later (bench/kt_run_report.py) says what machine it speaks for
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"), "system": system_info(result.device),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    path = out / "metrics.json"
    path.write_text(json.dumps(report, indent=2, default=float))
    return path


def format_metrics_table(rows: dict[str, dict[str, float]]) -> str:
    cols = ("auc", "acc", "rmse", "logloss", "ece", "n")
    lines = [f"{'split':<14}" + "".join(f"{c:>10}" for c in cols)]
    for name, m in rows.items():
        cells = "".join(f"{m.get(c, float('nan')):>10.4f}" if c != "n" else f"{int(m.get(c, 0)):>10d}" for c in cols)
        lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)


def summary_rows(result: TrainResult) -> dict[str, dict[str, float]]:
    """Validation metrics at the best epoch followed by the test splits, for printing."""
    best_row = next((h for h in result.history if h["epoch"] == result.best_epoch), {})
    valid = {k.removeprefix("valid_"): v for k, v in best_row.items() if k.startswith("valid_")}
    valid["n"] = result.valid_size
    return {"valid (best)": valid} | result.test_metrics
