"""`kt serve --workers N`: the shared listening socket has Nagle's algorithm off (uvicorn binds
it with protocol 0, so asyncio would not, and every response waited ~40 ms for a delayed ACK)."""

from __future__ import annotations

import socket


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
