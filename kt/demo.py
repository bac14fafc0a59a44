"""The main job behind ``kt demo``: a whole ktpath pipeline on the embedded default world.

Steps, each a call into the library (nothing here that the CLI, API or explorer do not also use):

1. simulate a small LINER-like world (``kt sim``) into ``Settings.world_dir``;
2. validate it against the data contract (``kt data validate``), rejected rows quarantined;
3. train KT models on its highlight logs (``kt train``), tracked and registered in MLflow,
   and promote the best by test AUC to ``champion`` (``kt promote``);
4. score every user's topic mastery into ``data/mastery.parquet`` (``kt mastery score``) and
   show a few users' estimates next to the simulator's true mastery;
5. load the world into the event store the API serves from (``kt store load``);
6. plan one user's learning path (``kt recommend``);
7. compare recommendation policies in the simulator (``data/planner_eval.json``).

It ends by telling a newcomer how to open what it made.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kt.config import Settings

# Small, fast models: the demo trains on 2 CPU cores in about a minute each.
DEMO_MODELS: dict[str, dict[str, Any]] = {
    "dkt": {"model_params": {"dim": 64, "hidden": 64, "dropout": 0.2}, "lr": 2e-3},
    "sakt": {"model_params": {"dim": 64, "num_heads": 4, "num_blocks": 1, "dropout": 0.2}, "lr": 2e-3},
    "akt": {"model_params": {"dim": 64, "num_heads": 4, "ff_dim": 128, "final_dim": 128, "dropout": 0.1}, "lr": 1e-3},
}


@dataclass
class DemoConfig:
    preset: str = "small"
    seed: int = 0
    # AKT is the most accurate (``kt demo --models dkt,akt``) but its online updates re-encode a
    # window per event, which makes the demo's mastery and policy steps several times slower.
    models: tuple[str, ...] = ("dkt", "sakt")
    max_epochs: int = 8
    patience: int = 2
    show_users: int = 3
    eval_users: int = 40
    eval_steps: int = 6
    fresh: bool = True  # regenerate the world and the store
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Checked before anything runs: a bad name must not cost the world it would replace."""
        from kt.models import available_models
        from kt.sim.config import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"unknown simulator preset {self.preset!r}; known: {', '.join(PRESETS)}")
        unknown = [m for m in self.models if m not in available_models()]
        if unknown or not self.models:
            raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                             f"known: {', '.join(available_models())}")
        for name in ("max_epochs", "patience", "eval_users", "eval_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")


class Steps:
    """Prints numbered step headers with their wall time."""

    def __init__(self, total: int, echo: Callable[[str], None] = print) -> None:
        self.total, self.n, self.echo, self.t0 = total, 0, echo, time.perf_counter()

    def __call__(self, title: str) -> None:
        self.n += 1
        self.echo(f"\n[{self.n}/{self.total}] {title}  (t={time.perf_counter() - self.t0:.0f}s)")


def run_demo(settings: Settings, config: DemoConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    from kt.data.io import load_world
    from kt.sim import generate_world, preset

    step = Steps(7, echo)
    world_dir = Path(settings.world_dir)
    out: dict[str, Any] = {"world_dir": str(world_dir)}

    step(f"Simulating a '{config.preset}' world (seed {config.seed})")
    if config.fresh and world_dir.exists():
        shutil.rmtree(world_dir)
    summary = generate_world(preset(config.preset, seed=config.seed), world_dir)
    echo(f"  {summary.n_topics} topics ({summary.n_prerequisites} prerequisite edges), {summary.n_items:,} items, "
         f"{summary.n_users:,} users, {summary.n_folders:,} folders, {summary.n_events:,} highlight events "
         f"-> {world_dir}")

    step("Validating the world against the data contract")
    world = load_world(world_dir, quarantine_dir=settings.quarantine_dir_for(world_dir))
    for line in world.summary_lines():
        echo(f"  {line}")

    step(f"Training KT models ({', '.join(config.models)}) on the highlight logs, tracked in MLflow")
    out["models"] = _train_models(settings, config, world_dir, echo)

    step("Scoring every user's topic mastery (batch) and comparing with the simulator's truth")
    out["mastery"] = _mastery(settings, config, world, world_dir, echo)

    step("Loading the world into the event store the API serves from")
    out["store"] = _load_store(settings, world_dir, echo)

    step("Planning a learning path for one user")
    out["path_user"] = _recommend(settings, world, echo)

    step(f"Comparing recommendation policies in the simulator ({config.eval_users} users x {config.eval_steps} steps)")
    out["planner_eval"] = _planner_eval(settings, config, world_dir, echo)

    echo(next_steps(settings, out.get("path_user")))
    return out


# ---------------------------------------------------------------------------- steps
def _train_models(settings: Settings, config: DemoConfig, world_dir: Path, echo) -> dict[str, Any]:
    from kt.data.datasets import load_kt_dataset
    from kt.train.pipeline import format_metrics_table, run_training, summary_rows
    from kt.train.tracking import promote
    from kt.train.trainer import TrainConfig

    splits = load_kt_dataset(str(world_dir), settings)
    echo(f"  interactions: train {splits.train.num_interactions:,}, valid {splits.valid.num_interactions:,}, "
         f"test {splits.test.num_interactions:,} (outcome rule: docs/data.md)")
    runs = {}
    for name in config.models:
        spec = DEMO_MODELS.get(name, {"model_params": {}, "lr": 1e-3})
        tc = TrainConfig(model=name, model_params=dict(spec["model_params"]), lr=spec["lr"],
                         max_epochs=config.max_epochs, patience=config.patience, seed=config.seed, progress=False)
        t0 = time.perf_counter()
        outcome = run_training(settings, tc, str(world_dir), splits=splits)
        res = outcome.result
        echo(f"  {name}: {res.epochs_run} epochs in {time.perf_counter() - t0:.0f}s, registered as "
             f"models:/{settings.registered_model}/{outcome.model_version}")
        echo("    " + format_metrics_table(summary_rows(res)).replace("\n", "\n    "))
        runs[name] = {"version": outcome.model_version, "run_id": outcome.run_id,
                      "test_auc": res.test_metrics.get("test", {}).get("auc")}
    champion = promote(settings, best_by="test_auc", data=str(splits.meta.get("name", world_dir)))
    echo(f"  champion: models:/{settings.registered_model}@champion -> version {champion}")
    return {"runs": runs, "champion_version": champion}


def _mastery(settings: Settings, config: DemoConfig, world, world_dir: Path, echo) -> dict[str, Any]:
    from kt.data.outcome import events_to_interactions
    from kt.mastery.batch import score_world
    from kt.mastery.catalog import TopicCatalog
    from kt.mastery.config import MasteryConfig
    from kt.mastery.demo import demo_report, format_demo
    from kt.mastery.tracker import MasteryTracker
    from kt.train.tracking import load_champion

    loaded = load_champion(settings)
    cfg = MasteryConfig()
    catalog = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, world.items,
                                 world.topics["topic_id"].astype(str).tolist(), cfg.panel_size)
    out_path = settings.data_dir / "mastery.parquet"
    summary = score_world(loaded.model, catalog, world_dir, out_path, cfg, rule=settings.outcome_rule())
    echo(f"  {summary.__dict__}")
    echo(f"  -> {out_path}")
    # a few of the most active users, estimated online and set beside their true mastery
    counts = world.events["user_id"].astype(str).value_counts()
    users = counts.index[: config.show_users].tolist()
    tracker = MasteryTracker.from_loaded(loaded, world.items)
    events = world.events[world.events["user_id"].astype(str).isin(users)]
    interactions, _ = events_to_interactions(events, world.items, settings.outcome_rule())
    for u in users:
        tracker.rebuild(u, interactions[interactions["user_id"].astype(str) == u])
    echo("  " + format_demo(demo_report(world_dir, tracker, users, top=6)).replace("\n", "\n  "))
    return {"path": str(out_path), "users": users}


def _load_store(settings: Settings, world_dir: Path, echo) -> dict[str, Any]:
    from kt.store import EventStore
    from kt.store.loader import load_world_into_store

    store = EventStore(settings.db_url)
    try:
        report = load_world_into_store(store, world_dir, settings.outcome_rule(),
                                       quarantine_dir=settings.quarantine_dir_for(world_dir))
    finally:
        store.close()
    echo(f"  {report.events_inserted:,} events stored ({report.events_duplicate:,} already there) -> {settings.db_url}")
    return {"db_url": settings.db_url, "events_inserted": report.events_inserted}


def _recommend(settings: Settings, world, echo) -> str:
    from kt.data.outcome import events_to_interactions
    from kt.mastery.tracker import MasteryTracker
    from kt.planner import Planner, render_path
    from kt.train.tracking import load_champion

    loaded = load_champion(settings)
    user = str(world.events["user_id"].astype(str).value_counts().index[0])
    events = world.events[world.events["user_id"].astype(str) == user]
    interactions, _ = events_to_interactions(events, world.items, settings.outcome_rule())
    tracker = MasteryTracker.from_loaded(loaded, world.items)
    tracker.rebuild(user, interactions)
    planner = Planner.from_world(world)
    languages = [x for x in str(world.users.loc[world.users["user_id"].astype(str) == user, "languages"].iloc[0]).split("|") if x]
    path = planner.plan(user, tracker, events[["content_id", "timestamp"]], 3, 5, languages)
    echo("  " + render_path(path).replace("\n", "\n  "))
    return user


def _planner_eval(settings: Settings, config: DemoConfig, world_dir: Path, echo) -> str | None:
    from kt.planner.compare import compare_policies
    from kt.planner.evaluation import EvalConfig
    from kt.train.tracking import load_champion

    result = compare_policies(
        world_dir, load_champion(settings),
        EvalConfig(users=config.eval_users, steps=config.eval_steps, seed=config.seed), rule=settings.outcome_rule(),
    )
    path = settings.data_dir / "planner_eval.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    echo("  " + result["table"].replace("\n", "\n  "))
    echo(f"  -> {path}")
    return str(path)


def next_steps(settings: Settings, user_id: str | None) -> str:
    from kt.api.hints import serve_hints

    hints = serve_hints(settings, user_id=user_id or "u0000")
    mlflow_ui = (f"mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} "
                 f"--default-artifact-root {settings.mlflow_artifact_root} --port 5000")
    return "\n".join([
        "",
        "Done. What to open next (from this directory; `source .venv/bin/activate` first):",
        "  Explorer (Streamlit, for product managers):",
        "    kt explore                      # then open http://127.0.0.1:8501",
        "  API (FastAPI) and its docs:",
        f"    {hints['serve']}",
        f"    open {hints['docs']}",
        f"    {hints['curl']}",
        "  MLflow UI (runs, metrics, the model registry and its champion):",
        f"    {mlflow_ui}",
        "    open http://127.0.0.1:5000",
        "  More: kt recommend --user <id>, kt mastery show --user <id>, kt train --data assist2015 --model akt,",
        "        kt warm-paths (precompute every user's learning path, so the API's first reads are store reads)",
    ])
