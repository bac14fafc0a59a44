"""``kt serve`` as a child process on 127.0.0.1: for crash and fuzz tests, benchmarks and demos.

The child gets its settings through ``KT_*`` environment variables; :meth:`LiveServer.start`
returns once ``/readyz`` answers 200 (a champion is loaded and the store answers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from kt.store.pgserver import free_port


class LiveServer:
    """``LiveServer(home, db_url, api_key, log_path).start()`` ... ``.kill()`` (SIGKILL) / ``.stop()``."""

    def __init__(self, home: Path, db_url: str, api_key: str, log_path: Path, poll_seconds: float = 1.0,
                 workers: int = 1) -> None:
        self.home, self.db_url, self.api_key, self.log_path = home, db_url, api_key, log_path
        self.poll_seconds, self.workers = poll_seconds, workers
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> LiveServer:
        env = {**os.environ, "KT_HOME": str(self.home), "KT_DB_URL": self.db_url, "KT_API_KEYS": self.api_key,
               "MLFLOW_DISABLE_TELEMETRY": "true", "WANDB_MODE": "disabled"}
        cmd = [sys.executable, "-m", "kt.cli", "serve", "--port", str(self.port), "--poll-seconds", str(self.poll_seconds),
               "--log-level", "warning", "--workers", str(self.workers)]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        # its own process group: kill() and a stop that times out reach the workers too, so no
        # orphan keeps serving (or holding a share of the port) after a test
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kt serve exited with {self.proc.returncode}; log: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"kt serve not ready after {timeout}s; log: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL to the server and its workers: no shutdown handlers, no flushing; what was
        committed must survive."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)  # the supervisor gives its workers 25 s to finish
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
