"""``kt data``: validate contract tables and convert between KT file formats.

``kt data validate PATH [--table NAME] [--quarantine DIR]`` prints one summary line per table and exits
0 when every row is clean, 1 when rows were rejected (see the quarantine files), 2 on a file-level error.
``kt data convert IN OUT --from pykt|dkvmn|akt --to pykt|dkvmn|akt`` rewrites a KT sequence file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMAT_NAMES = ("pykt", "dkvmn", "akt")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="validate data files, convert KT formats")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    v = sub.add_parser("validate", help="validate a world directory or one table file")
    v.add_argument("path", type=Path, help="world directory, or a table file / part-file directory")
    v.add_argument("--table", help="table name when PATH is one table (default: from the file name)")
    v.add_argument("--quarantine", type=Path,
                   help="where rejected rows go (default: <data_dir>/quarantine/<source name>-<hash of its path>)")
    v.set_defaults(func=validate)

    c = sub.add_parser("convert", help="convert a KT sequence file between formats")
    c.add_argument("input", type=Path)
    c.add_argument("output", type=Path)
    c.add_argument("--from", dest="src", choices=FORMAT_NAMES, required=True)
    c.add_argument("--to", dest="dst", choices=FORMAT_NAMES, required=True)
    c.set_defaults(func=convert)


def validate(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.config import Settings
    from kt.data.io import find_table_path, load_table, load_world
    from kt.data.schema import SCHEMAS, DataError, get_schema

    path: Path = args.path
    if args.table is not None and args.table not in SCHEMAS:
        raise CLIError(f"--table {args.table!r}: unknown table; one of {', '.join(SCHEMAS)}")
    quarantine = args.quarantine or Settings.from_env().quarantine_dir_for(path)
    if Path(quarantine).exists() and not Path(quarantine).is_dir():
        raise CLIError(f"--quarantine {quarantine}: exists and is not a directory")
    try:
        if not path.exists():
            raise CLIError(f"{path}: not found")
        is_world = path.is_dir() and args.table is None and find_table_path(path, "topics") is not None
        if is_world:
            world = load_world(path, quarantine_dir=quarantine)
            results = list(world.results.values())
        else:
            name = args.table or path.name.split(".")[0]
            if name not in SCHEMAS:
                raise CLIError(f"{path}: cannot tell the table from the name; pass --table ({', '.join(SCHEMAS)})")
            if path.is_dir() and find_table_path(path, name) is not None:  # a world dir and --table
                path = find_table_path(path, name)
            results = [load_table(path, get_schema(name), quarantine_dir=quarantine)]
    except (DataError, ValueError, OSError) as exc:
        raise CLIError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    for res in results:
        print(res.summary_line())
    return 1 if any(r.n_rejected for r in results) else 0


def convert(args: argparse.Namespace) -> int:
    from kt.cli import CLIError
    from kt.data.formats import get_format, write_file
    from kt.data.schema import DataError

    try:
        parsed = get_format(args.src).read(args.input)
        write_file(args.output, parsed, args.dst)
    except (DataError, ValueError, OSError) as exc:
        raise CLIError(str(exc).splitlines()[0]) from None
    seqs = parsed.seqs
    print(f"{args.input} ({args.src}) -> {args.output} ({args.dst}): {len(seqs)} sequences, "
          f"{seqs.num_interactions} interactions")
    return 0
