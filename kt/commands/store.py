"""``kt store``: load a world directory into the event/catalog store, or show its counts."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("store", help="event/catalog store: load a world, show counts")
    sub = p.add_subparsers(dest="store_command", metavar="ACTION")
    load = sub.add_parser("load", help="validate a world directory and load it into the store (idempotent); "
                                       "exit 1 when rows were rejected (the clean ones are loaded)")
    load.add_argument("world", help="world directory (data contract tables)")
    load.add_argument("--db-url", default=None, help="store URL (default: Settings.db_url)")
    load.set_defaults(func=run_load)
    counts = sub.add_parser("counts", help="row counts of every table")
    counts.add_argument("--db-url", default=None, help="store URL (default: Settings.db_url)")
    counts.set_defaults(func=run_counts)
    p.set_defaults(func=lambda _args: p.print_help() or 2)


def run_load(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from kt.cli import CLIError
    from kt.config import Settings
    from kt.data.schema import DataError
    from kt.store import EventStore
    from kt.store.loader import load_world_into_store

    settings = Settings.from_env().with_overrides(db_url=args.db_url)
    store = EventStore(settings.db_url)
    try:
        world_dir = Path(args.world).resolve()
        report = load_world_into_store(store, world_dir, settings.outcome_rule(),
                                       quarantine_dir=settings.quarantine_dir_for(world_dir))
    except DataError as exc:
        raise CLIError(str(exc)) from None
    finally:
        store.close()
    for line in report.summary_lines:
        print(f"  {line}")
    print(f"kt store: {report.events_inserted} new events, {report.events_duplicate} already stored -> {settings.db_url}")
    if report.rejected:
        # the clean rows are loaded; exit 1 (as `kt data validate` does) so a pipeline notices the rest
        print(f"kt store: {report.rejected} rows rejected and kept aside (the paths above); fix them and load "
              "again (loading is idempotent)", file=sys.stderr)
        return 1
    return 0


def run_counts(args: argparse.Namespace) -> int:
    from kt.config import Settings
    from kt.store import EventStore

    settings = Settings.from_env().with_overrides(db_url=args.db_url)
    store = EventStore(settings.db_url)
    try:
        for name, n in store.counts().items():
            print(f"{name:14s} {n}")
    finally:
        store.close()
    return 0
