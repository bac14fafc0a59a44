"""``kt warm-paths``: precompute users' default learning paths into the store's shared path cache.

The API serves a path from the shared cache while its stamps hold (the user's event count, the
catalog change number, the champion's version), so after a warm-up the first read of every
user who has not changed since costs a store read instead of a plan. Run it after loading or
bootstrapping a store, after promoting a champion, or on a schedule; users are split over
``--processes`` worker processes, each with its own copy of the serving world.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("warm-paths", help="precompute default learning paths into the shared path cache")
    p.add_argument("--db-url", default=None, help="store URL (default: Settings.db_url, env KT_DB_URL)")
    p.add_argument("--processes", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N users by id (default: all)")
    p.add_argument("--bundles", type=int, default=3, help="bundles per path, as the API's default request (3)")
    p.add_argument("--size", type=int, default=5, help="items per bundle, as the API's default request (5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kt.api.warm import warm_store
    from kt.cli import CLIError
    from kt.config import Settings

    if args.processes < 1:
        raise CLIError(f"--processes must be >= 1 (got {args.processes})")
    if args.limit is not None and args.limit < 0:
        raise CLIError(f"--limit must be >= 0 (got {args.limit})")
    from kt.planner import PlannerConfig

    lo, hi = PlannerConfig().min_bundle, PlannerConfig().max_bundle
    if not 1 <= args.bundles <= 10 or not lo <= args.size <= hi:
        raise CLIError(f"--bundles must be in 1..10 and --size in {lo}..{hi} (the API's limits)")
    import torch
    from sqlalchemy.exc import SQLAlchemyError

    torch.set_num_threads(1)  # with one process, the plans run here: one at a time, as in the API
    settings = Settings.from_env().with_overrides(db_url=args.db_url)
    try:
        stats = warm_store(settings, processes=args.processes, limit=args.limit, bundles=args.bundles,
                           size=args.size, log=lambda msg: print(f"kt warm-paths: {msg}", flush=True))
    except (RuntimeError, SQLAlchemyError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None
    print(f"kt warm-paths: {stats.users} users: {stats.planned} planned, {stats.fresh} already fresh, "
          f"{stats.superseded} superseded by newer paths, {stats.skipped} skipped, {stats.failed} failed, "
          f"in {stats.seconds:.0f} s")
    if stats.failed:
        raise CLIError(f"{stats.failed} user(s) failed (logged above); their paths are planned on first read")
    return 0
