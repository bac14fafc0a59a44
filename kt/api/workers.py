"""Several API worker processes, each with its own listening socket on the same port.

uvicorn's ``--workers`` shares one listening socket, and whichever worker wakes first accepts:
a client that opens its connections in a burst and keeps them (a connection pool) can land
all of them on one worker. Measured with 8 keep-alive clients and 2 workers: 8 connections on
one worker in 2 of 3 runs, which then served 58-60 plans/s while the other idled (101/s when
the split was 7 and 1). Here every worker binds its own socket with ``SO_REUSEPORT``, and Linux
spreads new connections over the sockets by a hash of their addresses.

:func:`serve_workers` is a small supervisor: it spawns the workers, restarts one that dies
after it has started serving, and stops them all on SIGINT or SIGTERM or when a worker fails
at startup (its socket or app could not be set up, which a restart would only repeat).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
import socket
import time

log = logging.getLogger("kt.api")

STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that could not start serving


def reuse_port_supported() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other sockets with SO_REUSEPORT may share. Its
    protocol is TCP (not 0), so asyncio turns Nagle's algorithm off on every connection."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    return sock


def _serve_one(app: str, host: str, port: int, log_level: str) -> None:
    """One worker: its own socket, its own app (built from the ``KT_*`` environment)."""
    import sys

    import torch
    import uvicorn

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's: it sends SIGTERM
    torch.set_num_threads(1)  # small per-request tensors: intra-op threads only add contention
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"kt serve: worker cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    server = uvicorn.Server(uvicorn.Config(app, factory=True, log_level=log_level))
    server.run(sockets=[sock])
    if not server.started:  # the app's startup failed: a restart would fail the same way
        sys.exit(STARTUP_FAILURE)


def serve_workers(app: str, host: str, port: int, workers: int, log_level: str = "info",
                  poll_seconds: float = 0.5) -> int:
    """Run ``workers`` processes serving the app factory ``app`` until SIGINT/SIGTERM; returns
    the exit status (0, or 1 when a worker failed at startup)."""
    ctx = mp.get_context("spawn")  # a clean interpreter per worker: no inherited threads or connections
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _f: stop.append(s)) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> mp.Process:
        p = ctx.Process(target=_serve_one, args=(app, host, port, log_level), name="kt-serve-worker")
        p.start()
        return p

    procs = [start() for _ in range(workers)]
    status = 0
    try:
        while not stop:
            time.sleep(poll_seconds)
            for i, p in enumerate(procs):
                if p.is_alive():
                    continue
                if p.exitcode == STARTUP_FAILURE:
                    log.error("worker %s failed at startup; stopping", p.pid)
                    print(f"kt serve: worker {p.pid} failed at startup (see above); stopping", flush=True)
                    status = 1
                    stop.append(0)
                    break
                print(f"kt serve: worker {p.pid} exited with status {p.exitcode}; starting another", flush=True)
                procs[i] = start()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()  # uvicorn finishes the requests in flight on SIGTERM
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
