"""The `audience-worker` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker import logs
from worker.errors import ConfigurationError
from worker.store.importer import ImportLineError

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
REAL_DATA_AS_OF = "2022-10-20T00:00:00Z"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audience-worker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="run everything locally on the real data and print the audiences",
        description="Start a MongoDB-speaking server, Redis, the worker and the API; import "
        "the data; create audiences of every rule kind; print their counts.",
    )
    demo.add_argument("--data-dir", type=Path, default=REAL_DATA)
    demo.add_argument(
        "--as-of",
        default=REAL_DATA_AS_OF,
        help="evaluation instant (default: the day after the real data ends); 'now' for now",
    )
    demo.add_argument(
        "--exit", action="store_true", help="stop after printing the table instead of serving"
    )

    load = commands.add_parser(
        "import",
        help="load passports.jsonl and wallets.jsonl into MONGO_URL (idempotent)",
    )
    load.add_argument("--data-dir", type=Path, default=REAL_DATA)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure("WARNING")
    try:
        return _dispatch(args)
    except (ConfigurationError, ImportLineError, OSError) as error:
        print(f"audience-worker {args.command}: {error}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from worker.embedded import demo

        as_of = None if args.as_of == "now" else args.as_of
        return demo.run(args.data_dir, as_of, keep_running=not args.exit)
    if args.command == "import":
        return _import(args.data_dir)
    return 2


def _import(data_dir: Path) -> int:
    from worker.embedded.demo import import_with_progress
    from worker.settings import get_settings

    import_with_progress(get_settings(), data_dir)
    return 0
