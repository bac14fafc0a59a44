"""The one settings object.

Every path is absolute and derived from ``home`` (the project checkout by default), never
from the working directory. Environment variables override each field, so the CLI, the API,
the explorer and tests all read the same configuration.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _default_home() -> Path:
    env = os.environ.get("KT_HOME")
    return Path(env).resolve() if env else _PACKAGE_ROOT


class SettingsError(ValueError):
    """A ``KT_*`` environment variable that cannot be used: names the variable and its value."""


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise ValueError("expected a non-negative integer") from None
    if seed < 0:
        raise ValueError("expected a non-negative integer")
    return seed


def device_name(text: str) -> str:
    """``text`` when it is a device setting (auto, cpu, cuda, cuda:N, mps), else a ValueError."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
    return text


@dataclass(frozen=True)
class Settings:
    """Configuration shared by every layer.

    home: root holding ``data/`` (generated world, event store) and ``mlruns/`` (MLflow store).
    datasets_dir: the public KT benchmark datasets (read-only, never copied into the repo).
    db_url: event/state store; ``sqlite:///<path>`` (embedded default) or ``postgresql://...``.
    mlflow_tracking_uri / mlflow_artifact_root: the MLflow store (SQLite backend, MLflow 3).
    registered_model: name in the MLflow model registry; the API serves its ``champion`` alias.
    device: ``auto`` picks CUDA when present, else CPU.
    api_keys: accepted values of the ``X-API-Key`` header on /v1 routes.
    outcome_rule_file: a YAML file of :class:`kt.data.outcome.OutcomeRule` fields (env
      ``KT_OUTCOME_RULE``); None = the rule's defaults. Training, store loads, ingest, mastery and
      the planner all label events with :meth:`outcome_rule`, so a served model sees events
      labelled as its training data was.
    """

    home: Path = field(default_factory=_default_home)
    datasets_dir: Path | None = None
    world_dir: Path | None = None
    db_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: Path | None = None
    registered_model: str = "ktpath-kt"
    device: str = "auto"
    api_keys: tuple[str, ...] = ("dev-key",)
    seed: int = 0
    outcome_rule_file: Path | None = None

    def __post_init__(self) -> None:
        home = Path(self.home).resolve()
        object.__setattr__(self, "home", home)
        if self.datasets_dir is None:
            object.__setattr__(self, "datasets_dir", (home.parent / "shared" / "data").resolve())
        if self.world_dir is None:
            object.__setattr__(self, "world_dir", home / "data" / "world")
        if self.db_url is None:
            object.__setattr__(self, "db_url", f"sqlite:///{home / 'data' / 'ktpath.db'}")
        if self.mlflow_tracking_uri is None:
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{home / 'mlruns' / 'mlflow.db'}")
        if self.mlflow_artifact_root is None:
            object.__setattr__(self, "mlflow_artifact_root", home / "mlruns" / "artifacts")

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def mlruns_dir(self) -> Path:
        return self.home / "mlruns"

    def quarantine_dir_for(self, source: str | Path) -> Path:
        """Where rows rejected from ``source`` (a file or world directory) are kept: one folder per
        source, so loading another source never overwrites or clears them."""
        resolved = Path(source).resolve()
        digest = hashlib.sha1(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:8]
        return self.data_dir / "quarantine" / f"{resolved.name}-{digest}"

    def outcome_rule(self):
        """The :class:`kt.data.outcome.OutcomeRule` every command labels events with."""
        from kt.data.outcome import OutcomeRule

        return OutcomeRule() if self.outcome_rule_file is None else OutcomeRule.from_yaml(self.outcome_rule_file)

    def with_overrides(self, **kwargs) -> Settings:
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``KT_*`` environment variables (unset ones keep their defaults)."""
        env = dict(os.environ if env is None else env)
        kwargs: dict = {}
        if "KT_HOME" in env:
            kwargs["home"] = Path(env["KT_HOME"])
        for key, name, conv in (
            ("KT_DATASETS_DIR", "datasets_dir", Path),
            ("KT_WORLD_DIR", "world_dir", Path),
            ("KT_DB_URL", "db_url", str),
            ("KT_MLFLOW_TRACKING_URI", "mlflow_tracking_uri", str),
            ("KT_MLFLOW_ARTIFACT_ROOT", "mlflow_artifact_root", Path),
            ("KT_REGISTERED_MODEL", "registered_model", str),
            ("KT_DEVICE", "device", device_name),
            ("KT_SEED", "seed", _seed),
            ("KT_OUTCOME_RULE", "outcome_rule_file", Path),
        ):
            if key in env and env[key] != "":
                try:
                    kwargs[name] = conv(env[key])
                except ValueError as exc:
                    raise SettingsError(f"{key}={env[key]!r}: {exc}") from None
        if env.get("KT_API_KEYS"):
            keys = tuple(k.strip() for k in env["KT_API_KEYS"].split(",") if k.strip())
            if not keys:  # e.g. ",," or "  ": neither every request refused nor the public dev key
                raise SettingsError(f"KT_API_KEYS={env['KT_API_KEYS']!r}: no key in it (comma-separated keys)")
            kwargs["api_keys"] = keys
        settings = cls(**kwargs)
        if settings.outcome_rule_file is not None:  # read now: a bad file is a setup error, not a mid-run one
            try:
                settings.outcome_rule()
            except Exception as exc:  # missing file, YAML syntax, unknown or invalid fields
                raise SettingsError(f"KT_OUTCOME_RULE={env['KT_OUTCOME_RULE']!r}: {str(exc).splitlines()[0]}") from None
        return settings


def resolve_device(requested: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; anything else is passed through."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def usable_device(requested: str) -> str:
    """``requested`` (a ``KT_DEVICE`` value) resolved to a device this machine has, or a one-line
    ValueError: torch would say ``Torch not compiled with CUDA enabled`` (an AssertionError) or list
    every device type it knows instead."""
    try:
        device_name(requested)
    except ValueError as exc:
        raise ValueError(f"device {requested!r}: {exc}") from None
    import torch

    name = resolve_device(requested)
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r}: cuda requested but not available "
                             f"(torch {torch.__version__} sees no CUDA device); use --device cpu or auto")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {requested!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {requested!r}: mps requested but not available; use --device cpu or auto")
    return name
