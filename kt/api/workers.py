"""Several API worker processes, each with its own listening socket on the same port.

uvicorn's ``--workers`` shares one listening socket, and whichever worker wakes first accepts:
a client that opens its connections in a burst and keeps them (a connection pool) can land
all of them on one worker. Measured with 8 keep-alive clients and 2 workers: 8 connections on
one worker in 2 of 3 runs, which then served 58-60 plans/s while the other idled (101/s when
the split was 7 and 1). Here every worker binds its own socket with ``SO_REUSEPORT``, and Linux
spreads new connections over the sockets by a hash of their addresses.

:func:`serve_workers` is a small supervisor: it spawns the workers, replaces one that dies
(waiting longer after each quick death, so a worker that cannot start does not spin), and stops
them all on SIGINT, SIGTERM or SIGHUP, or when a worker exits with uvicorn's startup-failure
status (its socket or app could not be set up), as uvicorn's own supervisor does. A worker
stops by itself when the supervisor dies, so no orphan keeps a share of the port.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
import time

STARTUP_FAILURE = 3  # uvicorn's exit status for a worker that could not start serving


def reuse_port_supported() -> bool:
    """Linux spreads connections over SO_REUSEPORT sockets; macOS and the BSDs accept the
    option but hand every connection to one socket."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other sockets with SO_REUSEPORT may share. Its
    protocol is TCP (not 0), so asyncio turns Nagle's algorithm off on every connection."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def port_is_free(host: str, port: int) -> bool:
    """False when something already listens on (host, port), such as another ``kt serve``:
    a plain bind (no SO_REUSEPORT) fails then, where the workers' binds would quietly share."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _exit_with_parent() -> None:
    """SIGTERM this worker (uvicorn's graceful stop) once the supervisor is gone."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _serve_one(host: str, port: int, log_level: str, poll_seconds: float) -> None:
    """One worker: its own socket, its own app (settings from the ``KT_*`` environment).
    uvicorn handles SIGINT and SIGTERM here: it finishes the requests in flight, then exits."""
    import torch
    import uvicorn

    from kt.api.main import create_app
    from kt.api.services import ApiConfig
    from kt.config import Settings

    _exit_with_parent()
    torch.set_num_threads(1)  # small per-request tensors: intra-op threads only add contention
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        print(f"kt serve: worker cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    app = create_app(Settings.from_env(), ApiConfig(champion_poll_seconds=poll_seconds))
    uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])


def serve_workers(host: str, port: int, workers: int, log_level: str = "info", poll_seconds: float = 5.0,
                  shutdown_seconds: float = 25.0) -> int:
    """Run ``workers`` processes until SIGINT/SIGTERM/SIGHUP; returns the exit status (0, or 1
    when a worker failed at startup). Stopping gives the workers ``shutdown_seconds`` in all to
    finish their requests; a second signal stops them at once."""
    ctx = mp.get_context("spawn")  # a clean interpreter per worker: no inherited threads or connections
    signals: list[int] = []
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda s, _f: signals.append(s)) for sig in handled}

    def start() -> tuple[mp.Process, float]:
        p = ctx.Process(target=_serve_one, args=(host, port, log_level, poll_seconds), name="kt-serve-worker")
        p.start()
        return p, time.monotonic()

    procs: list[tuple[mp.Process, float]] = []
    backoff = 0.5
    status = 0
    try:
        procs = [start() for _ in range(workers)]
        while not signals:
            multiprocessing.connection.wait([p.sentinel for p, _ in procs], timeout=0.5)
            for i, (p, started) in enumerate(procs):
                if signals:  # stopping: a worker that exited on the same signal is not replaced
                    break
                if p.is_alive():
                    continue
                if p.exitcode == STARTUP_FAILURE:
                    print(f"kt serve: worker {p.pid} failed at startup (see above); stopping", file=sys.stderr, flush=True)
                    status = 1
                    signals.append(0)
                    break
                # a worker that dies soon after its start would die again at once: wait longer each time
                backoff = min(backoff * 2, 30.0) if time.monotonic() - started < 30.0 else 0.5
                print(f"kt serve: worker {p.pid} exited with status {p.exitcode}; starting another in {backoff:.1f}s",
                      file=sys.stderr, flush=True)
                time.sleep(backoff)
                if not signals:
                    procs[i] = start()
                    print(f"kt serve: worker {procs[i][0].pid} started", file=sys.stderr, flush=True)
    finally:
        for p, _ in procs:
            if p.is_alive():
                p.terminate()  # uvicorn finishes the requests in flight on SIGTERM
        deadline = time.monotonic() + shutdown_seconds
        n_signals = len(signals)
        for p, _ in procs:
            while p.is_alive() and time.monotonic() < deadline and len(signals) <= n_signals:
                p.join(timeout=0.2)
        for p, _ in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
