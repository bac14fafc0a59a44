"""``kt promote``: point the registry's ``champion`` alias (served by the API) at a model version.

    kt promote                        # the latest registered version
    kt promote --version 3            # that version
    kt promote --run-id <RUN_ID>      # the version registered by that training run
    kt promote --best-by test_auc [--data sim]   # highest run metric (optionally one dataset)

The default is the *latest* version, not the best by test AUC: versions trained on different
datasets have incomparable AUCs, so "best" must be asked for, ideally with ``--data``.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "promote", help="set the champion model version in the MLflow registry",
        description="Point the registry alias 'champion' (what the API and the explorer serve) at a model "
                    "version. Without options: the latest registered version, not the best (AUCs of models "
                    "trained on different data do not compare); use --best-by test_auc --data NAME for the best.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--version", type=int, help="registered model version")
    g.add_argument("--run-id", help="the version registered from this MLflow run")
    g.add_argument("--best-by", metavar="METRIC", help="highest value of this run metric (e.g. test_auc)")
    p.add_argument("--data", help="with --best-by: only versions trained on this dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.config import Settings
    from kt.train.tracking import CHAMPION, champion_version, promote

    settings = Settings.from_env()
    if args.data and not args.best_by:
        raise CLIError("--data only applies with --best-by")
    from kt.data.datasets import dataset_name

    # runs are tagged with the normalized name (a world typed as a path is its resolved path, or sim)
    data = dataset_name(args.data, settings) if args.data else None
    previous = champion_version(settings)
    try:
        version = promote(settings, version=args.version, run_id=args.run_id, best_by=args.best_by, data=data)
    except LookupError as exc:
        raise CLIError(str(exc)) from None
    print(f"{settings.registered_model}@{CHAMPION} -> version {version} (was {previous if previous is not None else 'unset'})")
    return 0
