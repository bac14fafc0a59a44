"""``kt demo``: the main job on the embedded default (see :mod:`kt.demo`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="simulate a world, train, score mastery, plan paths, and say what to open")
    p.add_argument("--preset", default="small", help="simulator preset (tiny, small, medium; default small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="dkt,sakt", help="comma-separated registered model names")
    p.add_argument("--epochs", type=int, default=8, help="max epochs per model (early stopping on valid AUC)")
    p.add_argument("--eval-users", type=int, default=40, help="simulated users per policy in the planner comparison")
    p.add_argument("--eval-steps", type=int, default=6, help="recommendation steps per simulated user")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from kt.cli import CLIError
    from kt.config import Settings
    from kt.demo import DemoConfig, run_demo

    try:
        config = DemoConfig(
            preset=args.preset, seed=args.seed, models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
            max_epochs=args.epochs, eval_users=args.eval_users, eval_steps=args.eval_steps,
        )
    except ValueError as exc:  # before anything is simulated or deleted
        raise CLIError(str(exc)) from None
    run_demo(Settings.from_env(), config)
    return 0
