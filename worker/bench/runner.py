"""`audience-worker bench`: run the benchmark on the configured or embedded servers."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from rich.console import Console

from worker.bench.measure import Row, run_size, table
from worker.embedded.processes import Group
from worker.embedded.servers import start_cache, start_store
from worker.materialize.run import Context
from worker.settings import Settings, get_settings
from worker.store.mongo import connect, stores

console = Console()


def run(sizes: list[int], out: Path | None) -> list[Row]:
    rows: list[Row] = []
    with _context() as ctx:
        for size in sizes:
            with console.status(f"{size:,} passports: generating, loading, materializing"):
                found = run_size(ctx, size)
            for row in found:
                console.print(
                    f"{row.size:>9,} {row.audience:<18} {row.seconds:7.2f} s "
                    f"ratio {row.ratio:5.2f}  rss +{row.rss_growth_mb:6.1f} MB"
                )
            rows += found
    if out:
        out.write_text(table(rows, _machine(), datetime.now(UTC)))
        console.print(f"wrote {out}")
    return rows


@contextmanager
def _context() -> Iterator[Context]:
    configured = get_settings()
    workdir = Path(tempfile.mkdtemp(prefix="audience-bench-"))
    group = Group(workdir)
    try:
        mongo_url = configured.mongo_url or start_store(group)
        redis_url = configured.redis_url or start_cache(group)
        settings = Settings(
            mongo_url=mongo_url, mongo_db="audience_bench", redis_url=redis_url, key_prefix="bench"
        )
        client = connect(settings)
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            yield Context(settings, stores(client, settings), redis)
        finally:
            client.drop_database(settings.mongo_db)
            client.close()
            stale = list(redis.scan_iter("bench:*"))
            if stale:
                redis.unlink(*stale)
    finally:
        group.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _machine() -> str:
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{platform.platform()}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"
    )
