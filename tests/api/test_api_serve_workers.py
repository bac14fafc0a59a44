"""`kt serve --workers N`: a listening socket per worker (SO_REUSEPORT), connections spread
over them, a dead worker replaced; without SO_REUSEPORT, uvicorn's shared socket with Nagle's
algorithm off (uvicorn binds it with protocol 0, so asyncio would not, and every response
waited ~40 ms for a delayed ACK)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from api_helpers import API_KEY, spawned_children

from kt.api.workers import reuse_port_supported


def test_listening_socket_of_several_workers_has_tcp_nodelay(monkeypatch):
    import uvicorn.supervisors

    from kt.commands import serve

    seen = {}

    class FakeMultiprocess:
        def __init__(self, config, sockets):
            seen["sockets"] = sockets

        def run(self):
            seen["ran"] = True

    monkeypatch.setattr(uvicorn.supervisors, "Multiprocess", FakeMultiprocess)
    config = uvicorn.Config("kt.api.main:create_app_from_env", factory=True, host="127.0.0.1", port=0, workers=2)
    serve._run_workers(config)
    (sock,) = seen["sockets"]
    try:
        assert seen["ran"] and sock.type == socket.SOCK_STREAM
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        # and Linux hands the option to the connections it accepts
        sock.listen()
        client = socket.create_connection(sock.getsockname()[:2])
        conn, _ = sock.accept()
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        conn.close()
        client.close()
    finally:
        sock.close()


def _sockets(pid: int, port: int, state: str) -> int:
    """Sockets on local ``port`` in ``state`` ("01" established, "0A" listening) that process
    ``pid`` holds: its socket inodes, looked up in /proc/net/tcp."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == state and f[9] in inodes:
                n += 1
    return n


@pytest.mark.slow
@pytest.mark.skipif(not reuse_port_supported(), reason="SO_REUSEPORT spreads connections on Linux only")
def test_workers_share_the_connections_and_a_killed_one_is_replaced(live_db, tmp_path):
    """`kt serve --workers 2`: each worker listens on its own SO_REUSEPORT socket, so a pool of
    connections opened at once is spread over both (a shared socket gave all 8 of a load
    client's connections to one worker in 2 of 3 runs); a worker that dies is replaced."""
    import http.client

    from kt.api.live import LiveServer

    home, db_url = live_db
    server = LiveServer(home, db_url, API_KEY, tmp_path / "serve.log", workers=2).start()
    conns = []
    try:
        workers = spawned_children(server.proc.pid)
        assert len(workers) == 2
        # a worker listens once its app is up: /readyz answered from the first one
        deadline = time.monotonic() + 120
        while not all(_sockets(p, server.port, "0A") for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_sockets(p, server.port, "0A") for p in workers), "a worker never listened"
        for _ in range(16):  # kept open, as a client's connection pool keeps them
            c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            c.request("GET", "/healthz")
            assert c.getresponse().status == 200
            conns.append(c)
        held = [_sockets(p, server.port, "01") for p in workers]
        assert sum(held) == 16 and min(held) > 0, held  # all 16 on one worker: p = 2^-15 with the hash

        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = spawned_children(server.proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and workers[1] in now and workers[0] not in now, now
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
    finally:
        for c in conns:
            c.close()
        server.stop()
    assert not any(Path(f"/proc/{p}").exists() for p in now)  # the survivor and the replacement stopped too


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_already_in_use_is_refused_before_anything_is_announced(workers, capsys):
    # several workers' SO_REUSEPORT binds would share it quietly; one worker's bind would fail
    # only after "API docs at ..." was printed
    from kt.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--workers", workers, "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert f"127.0.0.1:{port} is already in use" in err and "Traceback" not in err
    assert "API docs at" not in out
