"""``kt explore``: the Streamlit explorer for product managers (``app/explorer.py``).

    kt explore [--port 8501] [--host 127.0.0.1] [--headless]

Runs ``streamlit run`` on the explorer of this checkout (resolved from the package, not the
working directory), with the same ``KT_*`` environment, so it shows the project of
``Settings.from_env()`` (``KT_HOME`` to point elsewhere). See docs/explorer.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path


def explorer_path() -> Path:
    """``app/explorer.py`` beside the ``kt`` package (source or editable checkouts)."""
    import kt

    return Path(kt.__file__).resolve().parents[1] / "app" / "explorer.py"


def streamlit_command(app: Path, host: str, port: int, headless: bool) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true" if headless else "false", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explore", help="open the Streamlit explorer (users, topics, runs, policies)")
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.set_defaults(func=run)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def run(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.config import Settings

    if not 0 < args.port < 65536:
        raise CLIError(f"--port must be in 1..65535 (got {args.port})")
    app = explorer_path()
    if not app.is_file():
        raise CLIError(f"explorer not found at {app}; kt explore needs the source checkout (pip install -e .)")
    if not _port_free(args.host, args.port):
        raise CLIError(f"port {args.port} on {args.host} is in use; pass --port")
    settings = Settings.from_env()
    print(f"kt explore: project {settings.home} (world {settings.world_dir})")
    print(f"kt explore: open http://{args.host}:{args.port}", flush=True)
    cmd = streamlit_command(app, args.host, args.port, args.headless)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.execv(cmd[0], cmd)  # streamlit replaces this process: Ctrl-C and signals reach it directly
    return 0  # not reached
