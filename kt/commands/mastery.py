"""``kt mastery``: per-user topic mastery from a KT model.

    kt mastery score   [--world DIR] [--checkpoint PATH | --model-uri URI] --out mastery.parquet
    torchrun --nproc_per_node 2 -m kt.cli mastery score ... --out DIR   # DIR/part-{rank}.parquet
    kt mastery quality [--world DIR] [--checkpoint PATH | --model-uri URI] [--out report.json]
    kt mastery show    [--world DIR] [--checkpoint PATH | --model-uri URI] --user u001 [--user ...]

Without --checkpoint/--model-uri the registry's champion (``Settings.registered_model``) is used.
Definitions (representative items, confidence, stages): docs/mastery.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mastery", help="topic mastery: batch scoring, quality vs the simulator, per-user view")
    sub = p.add_subparsers(dest="mastery_command", metavar="ACTION", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--world", type=Path, help="world directory (default: Settings.world_dir)")
        src = sp.add_mutually_exclusive_group()
        src.add_argument("--checkpoint", type=Path, help="a ktpath checkpoint (.pt)")
        src.add_argument("--model-uri", help="MLflow model URI (default: the champion)")
        sp.add_argument("--device", help="auto | cpu | cuda (default: Settings.device)")
        sp.add_argument("--panel-size", type=int, default=5, help="representative items per topic")
        sp.add_argument("--half-life-days", type=float, default=7.0, help="confidence half-life")
        sp.add_argument("--mastered", type=float, default=0.8, help="mastery threshold of the mastered stage")
        sp.add_argument("--min-obs", type=int, default=3, help="interactions below which a topic is new")

    s = sub.add_parser("score", help="score every user of a world directory (its event files, not the SQL "
                                     "store) into Parquet, in bounded memory")
    common(s)
    s.add_argument("--out", type=Path, required=True, help="output .parquet (a directory of part files under torchrun)")
    s.add_argument("--chunk-users", type=int, default=20_000, help="users held in memory at once")
    s.add_argument("--batch-users", type=int, default=256, help="users per model batch")
    s.add_argument("--practiced-only", action="store_true", help="only topics the user practised")
    s.add_argument("--no-decay-check", action="store_true",
                   help="skip the per-event panel query (needs_review then only from time since practice)")
    s.set_defaults(func=run_score)

    q = sub.add_parser("quality", help="estimated vs true mastery on a simulated world, with baselines")
    common(q)
    q.add_argument("--max-users", type=int, help="cap on evaluated test users")
    q.add_argument("--no-bkt", action="store_true", help="skip the BKT baseline")
    q.add_argument("--out", type=Path, help="JSON report path")
    q.set_defaults(func=run_quality)

    v = sub.add_parser("show", help="a few users' mastery and stages next to their true mastery")
    common(v)
    v.add_argument("--user", action="append", required=True, help="user id (repeatable)")
    v.set_defaults(func=run_show)


def _config(args):
    from kt.mastery.config import MasteryConfig, StageThresholds

    try:
        return MasteryConfig(panel_size=args.panel_size, half_life_days=args.half_life_days,
                             stages=StageThresholds(min_obs=args.min_obs, mastered=args.mastered))  # fmt: skip
    except ValueError as exc:
        from kt.cli import CLIError

        raise CLIError(str(exc)) from None


def _setup(args):
    """(settings, loaded model, world dir, items table, catalog)."""

    from kt.cli import CLIError
    from kt.config import Settings, usable_device
    from kt.mastery.catalog import TopicCatalog
    from kt.models.checkpoint import check_outcome_rule

    settings = Settings.from_env()
    try:
        device = usable_device(args.device or settings.device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if device.startswith("cuda") and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # cuda:0 too: not every rank on GPU 0
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # one GPU per torchrun rank
    world = Path(args.world or settings.world_dir)
    from kt.mastery.batch import read_world_table, world_items

    try:
        items = world_items(world)
    except FileNotFoundError as exc:
        raise CLIError(str(exc)) from None
    try:
        if args.checkpoint:
            from kt.models.checkpoint import load_checkpoint

            loaded = load_checkpoint(args.checkpoint, map_location=device)
        elif args.model_uri:
            from kt.train.tracking import load_model_uri

            loaded = load_model_uri(settings, args.model_uri, map_location=device)
        else:
            from kt.train.tracking import load_champion

            loaded = load_champion(settings, map_location=device)
        check_outcome_rule(loaded, settings.outcome_rule())
    except (FileNotFoundError, ValueError, LookupError) as exc:
        raise CLIError(str(exc)) from None
    if loaded.concept_vocab is None:
        raise CLIError("the model carries no concept vocabulary; mastery needs concept tokens = topic ids")
    topic_table = read_world_table(world, "topics", ["topic_id"])
    topics = topic_table["topic_id"].astype(str).tolist() if topic_table is not None else None
    cfg = _config(args)
    catalog = TopicCatalog.build(loaded.model, loaded.item_vocab, loaded.concept_vocab, items, topics, cfg.panel_size)
    return settings, loaded, world, items, catalog, cfg


def model_version(loaded) -> str:
    m = loaded.meta
    if m.get("registered_model") and m.get("version"):
        return f"{m['registered_model']}/{m['version']}"
    return str(m.get("model_uri") or m.get("path") or "unversioned")


def run_score(args) -> int:
    from kt.mastery.batch import score_world
    from kt.train.distributed import barrier, cleanup_distributed, init_distributed

    settings, loaded, world, _, catalog, cfg = _setup(args)
    info = init_distributed(loaded.model.device.type)
    out = Path(args.out)
    if info.enabled:
        out = out / f"part-{info.rank}.parquet"
        if info.rank == 0:
            # parts of an earlier run with more ranks would be read as users scored twice; no rank of
            # this run writes them, so rank 0 removes them
            for old in Path(args.out).glob("part-*.parquet"):
                rank = old.stem.removeprefix("part-")
                if rank.isdigit() and int(rank) >= info.world_size:
                    old.unlink()
    try:
        # sharded: the rejected rows sit beside the parts, named so that Parquet readers skip them
        rejected = Path(args.out) / "_rejected.csv" if info.enabled else None
        summary = score_world(loaded.model, catalog, world, out, cfg, chunk_users=args.chunk_users,
                              batch_users=args.batch_users, rank=info.rank, world_size=info.world_size,
                              practiced_only=args.practiced_only, decay_check=not args.no_decay_check,
                              rejected_path=rejected, rule=settings.outcome_rule())  # fmt: skip
        barrier()
    finally:
        cleanup_distributed()
    print(json.dumps(summary.__dict__))
    return 0


def run_quality(args) -> int:
    from kt.mastery.quality import evaluate_quality, format_report

    settings, loaded, world, _, catalog, cfg = _setup(args)
    report = evaluate_quality(loaded.model, catalog, world, cfg, split_seed=settings.seed,
                              max_users=args.max_users, bkt=not args.no_bkt, rule=settings.outcome_rule())  # fmt: skip
    print(format_report(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, default=str))
    return 0


def run_show(args) -> int:
    from kt.cli import CLIError
    from kt.mastery.demo import demo_report, format_demo
    from kt.mastery.quality import load_interactions
    from kt.mastery.tracker import MasteryTracker

    settings, loaded, world, _, catalog, cfg = _setup(args)
    inter = load_interactions(world, settings.outcome_rule())
    inter = inter[inter["user_id"].isin(args.user)]
    unknown = sorted(set(args.user) - set(inter["user_id"]))
    if unknown:
        raise CLIError(f"{world}: no interactions for user(s) {', '.join(unknown)}")
    tracker = MasteryTracker(loaded.model, loaded.item_vocab, loaded.concept_vocab, catalog, cfg,
                             model_version=model_version(loaded))  # fmt: skip
    tracker.observe_many(inter.rename(columns={"t": "timestamp"}))
    print(format_demo(demo_report(world, tracker, args.user)))
    return 0
