"""audience-worker: keeps brand audiences of product passports materialized in Redis."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pymongo.errors import PyMongoError, ServerSelectionTimeoutError
from redis.exceptions import RedisError

from worker import instants, logs
from worker.embedded.processes import StartFailed
from worker.errors import ConfigurationError
from worker.instants import iso
from worker.store.importer import ImportLineError

REAL_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
REAL_DATA_AS_OF = "2022-10-20T00:00:00Z"
# The bench's ranges: a second worker is what the issue asks about, and beyond a few per core
# the comparison only measures contention.
MIN_SIZE, MAX_SIZE = 1000, 10_000_000
MAX_WORKERS = 8
MAX_TRIES = 20


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audience-worker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_demo, _import, _materialize, _refresh, _metrics, _status, _bench):
        add(commands)
    return parser


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REAL_DATA,
        help="folder of passports.jsonl and wallets.jsonl (default: %(default)s)",
    )


def _demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="run everything locally on the real data and print the audiences",
        description="Start a MongoDB-speaking server, Redis, the worker, beat and the API; "
        "import the data; create audiences of every rule kind; print their counts; serve "
        "until Ctrl-C.",
    )
    _data_dir(demo)
    demo.add_argument(
        "--as-of",
        default=REAL_DATA_AS_OF,
        type=_as_of,
        help="evaluation instant, ISO-8601 with Z or an offset (default: %(default)s, the day "
        "after the real data ends); 'now' for the present",
    )
    demo.add_argument(
        "--exit", action="store_true", help="stop after printing the table instead of serving"
    )


def _import(commands: Any) -> None:
    load = commands.add_parser(
        "import",
        help="load passports.jsonl and wallets.jsonl into MONGO_URL (idempotent)",
        description="Load DATA_DIR/passports.jsonl and DATA_DIR/wallets.jsonl into the store "
        "named by MONGO_URL and MONGO_DB, creating the indexes the worker uses. Importing again "
        "updates what changed and adds nothing twice.",
    )
    _data_dir(load)


def _materialize(commands: Any) -> None:
    one = commands.add_parser(
        "materialize",
        help="materialize one audience now, in this process, with a progress bar",
        description="Evaluate one audience synchronously against MONGO_URL and publish the "
        "result to REDIS_URL, exactly as the worker would; prints the counts.",
    )
    one.add_argument("audience_id", help="the audience's 24-hex id")
    one.add_argument("--as-of", type=_as_of, default=None, help="evaluation instant (default: now)")


def _refresh(commands: Any) -> None:
    commands.add_parser(
        "refresh",
        help="enqueue every audience that is due now (what beat does each tick)",
        description="Find the audiences that are due (never materialized, lease expired, "
        "result stale, failed and due for a retry) and enqueue audiences.materialize for each.",
    )


def _metrics(commands: Any) -> None:
    serve = commands.add_parser(
        "metrics",
        help="serve Prometheus metrics over HTTP",
        description="Serve /metrics for Prometheus: audiences by state, the age of the oldest "
        "result, the queue backlog, run outcomes, failures and durations.",
    )
    serve.add_argument("--port", type=int, default=9808, help="port (default: %(default)s)")
    serve.add_argument("--host", default="0.0.0.0", help="address (default: %(default)s)")


def _status(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="a table of audiences: state, counts, age and last error",
        description="List audiences with their state, revision, counts, the age of their "
        "result and their last error.",
    )
    status.add_argument("--brand", help="only this brand's audiences")
    status.add_argument("--limit", type=int, default=100, help="at most this many rows")


def _bench(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark materialization against the floor of its I/O",
        description="Generate a synthetic brand of each size, load it, materialize a fixed "
        "set of audiences, and measure the floor (the same reads and writes done raw). "
        "Uses MONGO_URL and REDIS_URL when set, else starts local servers.",
    )
    bench.add_argument(
        "--sizes",
        default="100000",
        type=_sizes,
        help=f"comma-separated passport counts, each {MIN_SIZE} to {MAX_SIZE}, written "
        "without thousands separators (default: %(default)s)",
    )
    bench.add_argument(
        "--out", type=_out_file, default=None, help="write the tables here (markdown)"
    )
    bench.add_argument(
        "--workers",
        type=_within(1, MAX_WORKERS),
        default=2,
        help="at the largest size, run one audience with 1 up to this many worker processes "
        f"(1 to {MAX_WORKERS}; default: %(default)s; 1 skips the comparison)",
    )
    bench.add_argument(
        "--tries",
        type=_within(1, MAX_TRIES),
        default=3,
        help="runs of each audience and of its floor at each size; the middle one of each is "
        f"kept (1 to {MAX_TRIES}; default: %(default)s)",
    )
    bench.add_argument(
        "--partition-size",
        type=_partition_size,
        default=None,
        help="the workers' PARTITION_SIZE: 0 (never split) or at least 1000 (default: the "
        "configured one)",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure("WARNING")
    try:
        return _dispatch(args)
    except KeyboardInterrupt as stop:
        return _stopped(args.command, stop)
    except (
        ConfigurationError,
        ImportLineError,
        OSError,
        PyMongoError,
        RedisError,
        StartFailed,
    ) as error:
        behind = _stop_behind(error)
        if behind is not None:
            # Cleaning up after a stop may find a server already gone: it is still the stop.
            return _stopped(args.command, behind)
        print(f"audience-worker {args.command}: {_plain(error)}", file=sys.stderr)
        return 2
    except ValidationError as error:
        # A setting out of range: name it in one line rather than a traceback.
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]).upper()
        print(f"audience-worker {args.command}: {where}: {first['msg']}", file=sys.stderr)
        return 2


def _stopped(command: str, stop: KeyboardInterrupt) -> int:
    print(f"audience-worker {command}: stopped", file=sys.stderr)
    # The shell's convention: 128 plus the signal's number (Ctrl-C: 130, kill: 143).
    return 128 + getattr(stop, "signum", signal.SIGINT)


def _stop_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The stop this error was raised while handling, if any."""
    cause = error.__context__
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__context__
    return cause


def _plain(error: Exception) -> str:
    text = str(error)
    if isinstance(error, ServerSelectionTimeoutError):
        # pymongo appends its whole view of the servers; the reason comes first.
        return "cannot reach the store: " + text.split(", Timeout:")[0]
    return text


def _sizes(text: str) -> list[int]:
    """Comma-separated passport counts within the bench's range."""
    try:
        sizes = [_whole(part) for part in text.split(",")]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"not a list of whole numbers: {text!r}") from None
    # The fixed audiences need a thousand passports; past ten million a run takes hours.
    if not sizes or min(sizes) < MIN_SIZE or max(sizes) > MAX_SIZE:
        raise argparse.ArgumentTypeError(
            f"every size must be {MIN_SIZE} to {MAX_SIZE}, written without thousands separators"
        )
    if len(set(sizes)) < len(sizes):
        raise argparse.ArgumentTypeError(f"each size once: {text!r}")
    return sorted(sizes)  # the comparisons run at the largest


def _whole(text: str) -> int:
    # ASCII digits only: int() would also take "1_000", blanks around, other scripts' digits.
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def _within(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}")
        return value

    return parse


def _partition_size(text: str) -> int:
    value = _whole(text)
    if value < 0 or 0 < value < 1000:
        raise argparse.ArgumentTypeError("must be 0 (never split) or at least 1000")
    return value


def _out_file(text: str) -> Path:
    """A file the tables can be written to, checked before the bench spends its hour."""
    path = Path(text)
    if not text or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {str(folder)!r}")
    existed = path.exists()
    try:
        # Some folders (/proc) pass the access check and still refuse a new file.
        with path.open("a"):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {error.strerror}") from None
    if not existed:
        path.unlink()
    return path


def _as_of(text: str) -> str | None:
    if text == "now":
        return None
    try:
        return iso(instants.parse_as_of(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from worker.embedded import demo

        return demo.run(args.data_dir, args.as_of, keep_running=not args.exit)
    from worker.cli import operate

    if args.command == "import":
        return operate.import_data(args.data_dir)
    if args.command == "materialize":
        return operate.materialize_one(args.audience_id, args.as_of)
    if args.command == "refresh":
        return operate.refresh_now()
    if args.command == "metrics":
        return operate.serve_metrics(args.host, args.port)
    if args.command == "bench":
        from worker.bench import runner
        from worker.embedded.processes import interrupt_on_signals

        interrupt_on_signals()  # a killed bench still stops its servers and workers
        runner.run(args.sizes, args.out, args.workers, args.partition_size, args.tries)
        return 0
    if args.command == "status":
        return operate.status(args.brand, args.limit)
    return 2
