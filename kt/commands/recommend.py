"""``kt recommend``: a user's learning path with the reason for every item.

    kt recommend --user u0042 [--world DIR] [--goal t031 ...] [--bundles 3 --size 5 --lang en]
                 [--checkpoint PATH | --model-uri URI] [--json]

Mastery comes from the registry's champion KT model (or --checkpoint / --model-uri) through the
MasteryTracker, replaying the user's history from the world's events. See docs/planner.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("recommend", help="a user's learning path: bundles of items with reasons")
    p.add_argument("--user", required=True, help="user id")
    p.add_argument("--world", type=Path, help="world directory (default: Settings.world_dir)")
    p.add_argument("--goal", action="append", default=[], metavar="TOPIC", help="goal topic id (repeatable)")
    p.add_argument("--bundles", type=int, default=3, help="bundles in the path (default 3)")
    p.add_argument("--size", type=int, default=5, help="items per bundle (default 5; 3..10)")
    p.add_argument("--lang", action="append", default=None, metavar="CODE",
                   help="content language (repeatable; default: the user's languages)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="a ktpath checkpoint (.pt) instead of the champion")
    src.add_argument("--model-uri", help="MLflow model URI instead of the champion")
    p.add_argument("--band", type=float, nargs=2, metavar=("LO", "HI"), help="desirable-difficulty band of predicted success")
    p.add_argument("--json", action="store_true", help="print the path as JSON")
    p.set_defaults(func=run)


def _load_model(args, settings):
    from kt.cli import CLIError

    try:
        if args.checkpoint:
            from kt.models.checkpoint import load_checkpoint

            return load_checkpoint(args.checkpoint)
        if args.model_uri:
            from kt.train.tracking import load_model_uri

            return load_model_uri(settings, args.model_uri)
        from kt.train.tracking import load_champion

        return load_champion(settings)
    except LookupError:
        raise CLIError(
            "no trained KT model yet: run `kt train` (then `kt promote` to make it the champion), "
            "or pass --checkpoint PATH"
        ) from None
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def run(args) -> int:
    from kt.cli import CLIError
    from kt.config import Settings

    settings = Settings.from_env()
    world_dir = Path(args.world or settings.world_dir)
    if not world_dir.is_dir():
        raise CLIError(f"{world_dir}: world directory not found; generate one with `kt sim` or pass --world")
    if not 1 <= args.bundles <= 10:  # as the API's ?bundles=
        raise CLIError(f"--bundles must be in 1..10 (got {args.bundles})")
    if not 3 <= args.size <= 10:
        raise CLIError(f"--size must be in 3..10 (got {args.size})")

    from kt.data.io import load_world
    from kt.data.outcome import events_to_interactions
    from kt.data.schema import DataError
    from kt.models.checkpoint import check_outcome_rule

    try:
        world = load_world(world_dir, quarantine_dir=settings.quarantine_dir_for(world_dir))
    except DataError as exc:
        raise CLIError(str(exc)) from None
    if world.n_rejected:  # planned without them: say so, and where they are
        for line in world.summary_lines():
            print(line, file=sys.stderr)
    users = world.users["user_id"].astype(str)
    if args.user not in set(users):
        raise CLIError(f"user {args.user!r} is not in {world_dir / 'users.parquet'}")
    loaded = _load_model(args, settings)
    try:
        check_outcome_rule(loaded, settings.outcome_rule())
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if loaded.concept_vocab is None:
        raise CLIError("the model carries no concept vocabulary; the planner needs topic ids as concepts")

    from kt.mastery.tracker import MasteryTracker
    from kt.planner import Planner, PlannerConfig, render_path

    events = world.events[world.events["user_id"].astype(str) == args.user]
    interactions, _ = events_to_interactions(events, world.items, settings.outcome_rule())
    tracker = MasteryTracker.from_loaded(loaded, world.items)
    tracker.rebuild(args.user, interactions)
    try:
        config = PlannerConfig(band=tuple(args.band)) if args.band else PlannerConfig()
    except ValueError:
        lo, hi = args.band
        raise CLIError(f"--band LO HI must satisfy 0 <= LO <= HI <= 1 (got {lo:g} {hi:g})") from None
    planner = Planner.from_world(world, config)
    languages = args.lang
    absent, known = planner.catalog.languages_without_items(languages or ())
    if absent:
        raise CLIError(f"--lang: no items in {', '.join(absent)}; the catalog has {', '.join(known)}")
    if languages is None:
        row = world.users.loc[users == args.user, "languages"].iloc[0]
        languages = [x for x in str(row).split("|") if x]
    try:
        path = planner.plan(args.user, tracker, events[["content_id", "timestamp"]], args.bundles, args.size,
                            languages, args.goal or None)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps(path.to_dict(), indent=2, default=str) if args.json else render_path(path))
    return 0
