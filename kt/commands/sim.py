"""``kt sim``: generate a simulated world directory (docs/simulator.md)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sim", help="generate a simulated LINER-like world (topics, items, users, events)")
    p.add_argument("--preset", default="small", help="tiny, small (default), medium or bench")
    p.add_argument("--out", default=None, help="output directory (default: Settings.world_dir)")
    p.add_argument("--users", type=int, default=None, help="number of users")
    p.add_argument("--items", type=int, default=None, help="number of content items")
    p.add_argument("--topics", type=int, default=None, help="number of topics")
    p.add_argument("--days", type=int, default=None, help="simulated days")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: Settings.seed)")
    p.add_argument("--start", default=None,
                   help="first simulated day, ISO date (default 2026-01-05); events after the present are "
                        "rejected by the data contract, so a long simulation needs an earlier start")
    p.add_argument("--quiet", action="store_true", help="no per-chunk progress")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kt.cli import CLIError
    from kt.config import Settings
    from kt.sim import PRESETS, generate_world, preset

    settings = Settings.from_env()
    if args.preset not in PRESETS:
        raise CLIError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    for name in ("users", "items", "topics", "days"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "topics" else 1):
            raise CLIError(f"--{name} must be >= {2 if name == 'topics' else 1} (got {value})")
    try:
        config = preset(
            args.preset, n_users=args.users, n_items=args.items, n_topics=args.topics, days=args.days,
            seed=args.seed if args.seed is not None else settings.seed, start=args.start,
        )  # fmt: skip
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    if args.out is not None and not args.out.strip():
        raise CLIError("--out: an empty path; give a directory (default: Settings.world_dir)")
    out = Path(args.out).resolve() if args.out else settings.world_dir
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a directory")
    print(f"kt sim: preset {args.preset}, seed {config.seed}: {config.n_topics} topics, {config.n_items} items, "
          f"{config.n_users} users, {config.days} days -> {out}")  # fmt: skip
    try:
        s = generate_world(config, out, progress=not args.quiet)
    except OSError as exc:
        raise CLIError(f"--out {out}: cannot write the world: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a directory that is not a world: not replaced
        raise CLIError(str(exc)) from None
    print(f"  topics {s.n_topics} (prerequisite edges {s.n_prerequisites}), items {s.n_items}, users {s.n_users}")
    print(f"  folders {s.n_folders} ({s.n_folder_items} folder items), events {s.n_events}, "
          f"true-mastery rows {s.n_true_mastery}")  # fmt: skip
    print(f"  done in {s.seconds:.1f}s: {out}")
    return 0
