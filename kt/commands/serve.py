"""``kt serve``: run the HTTP API (uvicorn) over the store, serving the registry's champion."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the HTTP API (docs at http://HOST:PORT/docs)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--world", default=None, help="load this world directory into the store before serving")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--db-url", default=None, help="store URL (default: Settings.db_url, env KT_DB_URL)")
    p.add_argument("--poll-seconds", type=float, default=5.0, help="how often to check the champion alias")
    p.add_argument("--log-level", default="info", help="uvicorn log level")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from kt.cli import CLIError
    from kt.config import Settings

    if args.workers < 1:
        raise CLIError(f"--workers must be >= 1 (got {args.workers})")
    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be in 1..65535 (got {args.port})")
    settings = Settings.from_env().with_overrides(db_url=args.db_url)
    if args.world:
        _load_world(settings, Path(args.world).resolve())

    import torch
    import uvicorn

    from kt.api.hints import docs_url
    from kt.api.main import create_app
    from kt.api.services import ApiConfig

    # small per-request tensors: intra-op threads only add contention between requests
    torch.set_num_threads(1)
    from kt.api.workers import port_is_free

    if not port_is_free(args.host, args.port):  # before saying where the docs are
        raise CLIError(f"{args.host}:{args.port} is already in use (another kt serve?); choose another --port")
    print(f"kt serve: store {settings.db_url}; champion of {settings.registered_model!r} from {settings.mlflow_tracking_uri}")
    print(f"kt serve: API docs at {docs_url(args.host, args.port)} (API key header X-API-Key)", flush=True)
    if args.workers == 1:
        app = create_app(settings, ApiConfig(champion_poll_seconds=args.poll_seconds))
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    else:
        from kt.api.workers import reuse_port_supported, serve_workers
        from kt.mastery.store import MasteryStateStore
        from kt.store import EventStore
        from kt.train.tracking import champion_version

        # the schemas once, here: N workers creating missing tables at the same moment could race
        # (the store's on PostgreSQL after an upgrade; a new MLflow SQLite store's on any start)
        EventStore(settings.db_url).close()
        MasteryStateStore(settings.db_url).close()
        champion_version(settings)
        # each worker builds its own app from the environment
        os.environ["KT_HOME"] = str(settings.home)
        os.environ["KT_DB_URL"] = settings.db_url
        os.environ["KT_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
        if reuse_port_supported():  # a socket per worker: connections spread over the workers
            return serve_workers(args.host, args.port, args.workers, args.log_level, args.poll_seconds)
        _run_workers(uvicorn.Config("kt.api.main:create_app_from_env", factory=True, host=args.host, port=args.port,
                                    workers=args.workers, log_level=args.log_level))
    return 0


def _run_workers(config) -> None:
    """``uvicorn.run`` for several workers, with TCP_NODELAY on the shared listening socket
    (off Linux; :mod:`kt.api.workers` there).

    uvicorn binds that socket itself with protocol 0, and asyncio only turns Nagle's algorithm
    off for sockets whose protocol is TCP, so every response (headers, then body: two writes)
    waited for the client's delayed ACK: measured 44 ms per request, even /healthz, against
    1-3 ms with one worker. Linux copies TCP_NODELAY from a listening socket to the
    connections it accepts."""
    import socket

    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass


def _load_world(settings, world_dir) -> None:
    from kt.cli import CLIError
    from kt.data.schema import DataError
    from kt.store import EventStore
    from kt.store.loader import load_world_into_store

    store = EventStore(settings.db_url)
    try:
        report = load_world_into_store(store, world_dir, settings.outcome_rule(),
                                       quarantine_dir=settings.quarantine_dir_for(world_dir))
    except DataError as exc:
        raise CLIError(str(exc)) from None
    finally:
        store.close()
    print(f"kt serve: loaded {world_dir}: {report.events_inserted} new events "
          f"({report.events_duplicate} already stored), {report.rows.get('items', 0)} items, {report.rejected} rows rejected")
    if report.rejected:  # served without them: say where they are kept, as kt store load does
        for line in report.summary_lines:
            print(f"  {line}")
