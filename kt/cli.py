"""The ``kt`` command line. Each subcommand lives in ``kt/commands/<name>.py`` and exposes
``register(subparsers)``; this module only discovers and dispatches them, so adding a
command never means editing a central if/elif chain.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import kt.commands as commands_pkg
from kt.config import SettingsError


class CLIError(Exception):
    """A user-facing error: printed as one clear line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kt", description="ktpath: knowledge tracing to learning paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"kt.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (CLIError, SettingsError) as exc:
        print(f"kt {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a user sees one line; KT_DEBUG=1 shows the traceback
        if os.environ.get("KT_DEBUG"):
            raise
        print(f"kt {args.command}: error: {type(exc).__name__}: {_one_line(exc)} (set KT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


if __name__ == "__main__":
    # `python -m kt.cli` (e.g. under torchrun) runs this file as __main__; dispatch through the
    # importable kt.cli so the CLIError that commands raise is the class main() catches.
    from kt.cli import main as _main

    sys.exit(_main())
