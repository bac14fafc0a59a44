"""MLflow tracking and model registry for KT runs.

Store layout comes from :class:`Settings`: a SQLite backend (``mlruns/mlflow.db``) and an
artifact root (``mlruns/artifacts``); the ``ktpath`` experiment is created with that
artifact location so artifacts never land relative to the working directory.

A trained model is logged as an MLflow pyfunc model whose only artifact is the ktpath
checkpoint (``best.pt``), and registered under ``Settings.registered_model``. Serving code
never goes through pyfunc: :func:`load_champion` resolves ``models:/<name>@champion``,
downloads the checkpoint and rebuilds the model with :func:`kt.models.checkpoint.load_checkpoint`.
The pyfunc wrapper exists so the registered model is also usable by generic MLflow tooling.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kt.config import Settings
from kt.models.checkpoint import LoadedModel, load_checkpoint

EXPERIMENT = "ktpath"
CHAMPION = "champion"
CHECKPOINT_ARTIFACT = "checkpoint"  # run artifact dir holding the .pt file
MODEL_ARTIFACT = "model"  # pyfunc model name inside the run


def import_mlflow():
    """``mlflow``, imported with ktpath's environment defaults (no telemetry, no progress bars, no
    INFO lines); every module that talks to MLflow imports it through here."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # its INFO lines ("Creating initial MLflow database tables...") would interleave with ours;
    # warnings and errors still show (MLFLOW_LOGGING_LEVEL=INFO brings them back)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow

    return mlflow


def configure_mlflow(settings: Settings, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the settings' store and return the experiment id (created if needed)."""
    mlflow = import_mlflow()
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    root = Path(settings.mlflow_artifact_root)
    root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return client.create_experiment(experiment, artifact_location=(root / experiment).as_uri())
    return exp.experiment_id


def _client(settings: Settings):
    mlflow = import_mlflow()
    return mlflow.MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model_params": {"dim": 64}} -> {"model_params.dim": 64} (MLflow params are flat)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def system_info(device: str | None = None) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "device": device or ("cuda" if torch.cuda.is_available() else "cpu"),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu_name"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    else:
        info["gpu_name"] = "none"
    return info


class MLflowTracker:
    """One MLflow run. Implements the trainer's ``Tracker`` protocol (``log_metrics``)."""

    def __init__(self, settings: Settings, run_name: str | None = None, tags: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.mlflow = import_mlflow()
        self.experiment_id = configure_mlflow(settings)
        self.client = _client(settings)
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id: str = run.info.run_id
        self._finished = False

    # -- logging
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        items = [Param(k, str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import math
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        rows = [Metric(k, float(v), ts, int(step or 0)) for k, v in metrics.items() if v is not None and math.isfinite(float(v))]
        if rows:
            self.client.log_batch(self.run_id, metrics=rows)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, data: dict, file_name: str) -> None:
        self.client.log_dict(self.run_id, data, file_name)

    # -- registry
    def register_checkpoint(self, checkpoint: str | Path, tags: dict[str, Any] | None = None) -> int:
        """Log the checkpoint as a pyfunc model in this run and register it; returns the version."""
        mlflow = self.mlflow
        mlflow.set_tracking_uri(self.settings.mlflow_tracking_uri)
        mlflow.set_registry_uri(self.settings.mlflow_tracking_uri)
        pyfunc_logger = logging.getLogger("mlflow.pyfunc")
        level = pyfunc_logger.level
        with mlflow.start_run(run_id=self.run_id), warnings.catch_warnings():
            # MLflow nags about predict type hints and cloudpickle; the wrapper is ours and tiny.
            warnings.simplefilter("ignore")
            pyfunc_logger.setLevel(logging.ERROR)
            from kt.train.pyfunc_model import KTPyfuncModel

            try:
                info = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT,
                    python_model=KTPyfuncModel(),
                    artifacts={"checkpoint": str(checkpoint)},
                    # explicit requirements: inferring them imports and inspects the environment (slow)
                    pip_requirements=_pip_requirements(),
                    registered_model_name=self.settings.registered_model,
                )
            finally:
                pyfunc_logger.setLevel(level)
        version = int(info.registered_model_version)
        for k, v in (tags or {}).items():
            self.client.set_model_version_tag(self.settings.registered_model, str(version), k, str(v))
        self.client.set_model_version_tag(self.settings.registered_model, str(version), "run_id", self.run_id)
        return version

    def finish(self, status: str = "FINISHED") -> None:
        if not self._finished:
            self.client.set_terminated(self.run_id, status=status)
            self._finished = True


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("torch", "numpy", "pandas", "mlflow"):
        try:
            reqs.append(f"{pkg}=={version(pkg)}".split("+")[0])
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


# ---------------------------------------------------------------------------- champion
def champion_version(settings: Settings) -> int | None:
    """Version number behind ``models:/<registered_model>@champion``, or None. One cheap query."""
    import_mlflow()  # its environment defaults before the first mlflow import
    from mlflow.exceptions import MlflowException

    try:
        mv = _client(settings).get_model_version_by_alias(settings.registered_model, CHAMPION)
    except MlflowException:
        return None
    return int(mv.version)


def promote(
    settings: Settings,
    version: int | None = None,
    run_id: str | None = None,
    best_by: str | None = None,
    data: str | None = None,
) -> int:
    """Point the ``champion`` alias at a model version and return it.

    version: that version. run_id: the version registered from that run. best_by: a run metric
    (e.g. ``test_auc``): the version whose run has the highest value, among versions tagged
    with dataset ``data`` when given. Nothing given: the latest version.
    """
    client = _client(settings)
    name = settings.registered_model
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        raise LookupError(f"no versions of registered model {name!r} in {settings.mlflow_tracking_uri}")
    if version is not None:
        chosen = [v for v in versions if int(v.version) == int(version)]
        if not chosen:
            raise LookupError(f"{name!r} has no version {version}")
    elif run_id is not None:
        chosen = [v for v in versions if v.run_id == run_id or v.tags.get("run_id") == run_id]
        if not chosen:
            raise LookupError(f"no version of {name!r} comes from run {run_id}")
        chosen.sort(key=lambda v: int(v.version))
        chosen = chosen[-1:]
    elif best_by is not None:
        pool = [v for v in versions if data is None or v.tags.get("data") == data]
        if not pool:  # the cause is the data filter, not the metric: say which data tags there are
            tags = sorted({v.tags.get("data", "(untagged)") for v in versions})
            shown = ", ".join(repr(t) for t in tags[:10])
            if len(tags) > 10:
                shown += f", ... ({len(tags)} in all)"
            raise LookupError(f"no version of {name!r} is tagged data={data!r}; the data tags are: {shown}")
        scored = []
        for v in pool:
            run_id_v = v.run_id or v.tags.get("run_id")
            metrics = client.get_run(run_id_v).data.metrics if run_id_v else {}
            if best_by in metrics:
                scored.append((metrics[best_by], int(v.version), v))
        if not scored:
            raise LookupError(f"no version of {name!r} has run metric {best_by!r}" + (f" for data {data!r}" if data else ""))
        chosen = [max(scored, key=lambda s: (s[0], s[1]))[2]]
    else:
        chosen = [max(versions, key=lambda v: int(v.version))]
    ver = int(chosen[0].version)
    client.set_registered_model_alias(name, CHAMPION, str(ver))
    return ver


MODEL_URI_FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS, models:/NAME/latest or runs:/RUN_ID/checkpoint"
_MODEL_URI = re.compile(r"models:/[^/@]+(/[^/@]+|@[^/@]+)?|runs:/[^/]+/.+")


class ModelURIError(ValueError):
    """A model URI that is malformed or names nothing in the store (one line, with the accepted forms)."""


def check_model_uri(model_uri: str) -> None:
    """Refuse what cannot be a model URI before MLflow reads it as a relative artifact path
    (its error for ``garbage`` is a multi-line download report)."""
    if "://" in model_uri or Path(model_uri).exists():  # file://, s3://... or a local folder: MLflow reads it
        return
    if not _MODEL_URI.fullmatch(model_uri):
        raise ModelURIError(f"{model_uri!r} is not a model URI; use {MODEL_URI_FORMS}")


def checkpoint_from_registry(settings: Settings, model_uri: str, dst: str | Path | None = None) -> Path:
    """Download a registered model's checkpoint (``models:/name@alias`` or ``models:/name/3``)."""
    mlflow = import_mlflow()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    dst = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="ktpath-model-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    found = sorted(local.rglob("*.pt"))
    if not found:
        raise FileNotFoundError(f"{model_uri}: no checkpoint (.pt) among the model's artifacts in {local}")
    return found[0]


def load_model_uri(settings: Settings, model_uri: str, map_location: str = "cpu") -> LoadedModel:
    """The checkpoint behind ``model_uri`` rebuilt; :class:`ModelURIError` when the URI is malformed
    or names no model / version / alias / run in the store."""
    import_mlflow()  # its environment defaults before the first mlflow import
    from mlflow.exceptions import MlflowException

    check_model_uri(model_uri)
    with _tempdir() as tmp:
        try:
            path = checkpoint_from_registry(settings, model_uri, tmp)
        except MlflowException as exc:
            # a missing model / version / run, or an unknown alias (INVALID_PARAMETER_VALUE); a store
            # that cannot be read is another error and stays MLflow's
            if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise
            reason = " ".join(str(exc).split())
            reason = reason if len(reason) <= 200 else reason[:197] + "..."
            raise ModelURIError(f"{model_uri!r}: not found in {settings.mlflow_tracking_uri} "
                                f"({reason}); use {MODEL_URI_FORMS}") from None
        loaded = load_checkpoint(path, map_location)
    loaded.meta["model_uri"] = model_uri
    return loaded


def load_champion(settings: Settings, map_location: str = "cpu") -> LoadedModel:
    """The model behind ``models:/<registered_model>@champion`` (raises LookupError if none)."""
    version = champion_version(settings)
    if version is None:
        raise LookupError(
            f"registered model {settings.registered_model!r} has no '{CHAMPION}' alias in "
            f"{settings.mlflow_tracking_uri}; train one (kt train) and run kt promote"
        )
    loaded = load_model_uri(settings, f"models:/{settings.registered_model}/{version}", map_location)
    loaded.meta["registered_model"] = settings.registered_model
    loaded.meta["version"] = version
    return loaded


@contextmanager
def _tempdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="ktpath-model-") as tmp:
        yield tmp
