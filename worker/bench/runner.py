"""`audience-worker bench`: run the benchmark on the configured or embedded servers."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pymongo.errors import PyMongoError
from redis import Redis
from rich.console import Console

from worker.bench.measure import (
    Bench,
    Order,
    Row,
    Site,
    Split,
    audience_set,
    load,
    measure,
    orders,
    shared_orders,
    split,
    warm_up,
)
from worker.bench.report import table
from worker.bench.workers import Asker, Workers
from worker.embedded.processes import Group, group_in
from worker.embedded.servers import start_cache, start_store
from worker.materialize.base import Context
from worker.settings import Settings, get_settings
from worker.store.mongo import connect, stores

console = Console(soft_wrap=True)
DB = "audience_bench"
PREFIX = "bench"
RECONNECT_TRIES = 10


def run(
    sizes: list[int],
    out: Path | None,
    workers: int = 2,
    partition_size: int | None = None,
    tries: int = 3,
) -> tuple[list[Row], list[Order], list[Split]]:
    rows: list[Row] = []
    compared: list[Order] = []
    splits: list[Split] = []
    with _bench(sizes, partition_size, tries) as bench:
        _prepare(bench)
        for name, _ in audience_set(sizes[0]):
            with console.status(f"{name}: {tries} run(s) at each size, taken in turns"):
                found = measure(bench, name)
            for row in found:
                console.print(
                    f"{row.size:>9,} {row.audience:<18} {row.seconds:7.2f} s "
                    f"ratio {row.ratio:5.2f}  rss +{row.rss_growth_mb:6.1f} MB  parts {row.parts}"
                )
            rows += found
        rows.sort(key=lambda row: row.size)  # stable: each size keeps the audiences' order
        for site in bench.sites.values():
            with console.status(f"{site.size:,} passports: owner rules, both orders"):
                compared += _show(orders(site))
        largest = bench.sites[sizes[-1]]
        for count in range(1, workers + 1) if workers > 1 else ():
            with console.status(f"{largest.size:,} passports: one audience, {count} worker(s)"):
                splits.append(split(bench, largest, count))
            console.print(f"{count} worker(s): {splits[-1].seconds:.2f} s{_unsplit(splits[-1])}")
        with console.status(f"{largest.size:,} passports: other brands' wallets added"):
            compared += _show(shared_orders(largest))
    if out:
        text = table(rows, compared, splits, _machine(), datetime.now(UTC), tries)
        try:
            out.write_text(text)
        except OSError as error:
            raise OSError(f"cannot write {str(out)!r}: {error.strerror}") from error
        console.print(f"wrote {out}")
    return rows, compared, splits


def _unsplit(run: Split) -> str:
    if run.parts > 1:
        return ""
    return " (one part: below PARTITION_SIZE, so more workers have nothing to share)"


def _show(found: list[Order]) -> list[Order]:
    for order in found:
        console.print(
            f"{order.size:>9,} {order.audience:<18} "
            f"wallets first {order.wallets_first_s:7.2f} s"
            f"  passports first {order.passports_first_s:7.2f} s  auto: {order.picked}"
            f"  other brands' wallets {order.other_wallets:,}"
        )
    return found


def _prepare(bench: Bench) -> None:
    """Every size loaded, each into a database of its own, before any is measured."""
    for site in bench.sites.values():
        with console.status(f"{site.size:,} passports: generating and loading"):
            load(site)
    with console.status("starting the store's server again, and the workers"):
        bench.settle()
        warm_up(bench)


@contextmanager
def _bench(sizes: list[int], partition_size: int | None, tries: int) -> Iterator[Bench]:
    configured = get_settings()
    with group_in("audience-bench-") as group:
        mongo_url = configured.mongo_url or start_store(group)
        store_pid = None if configured.mongo_url else group.children[-1][1].pid
        redis_url = configured.redis_url or start_cache(group)
        with _connected(mongo_url, redis_url, sizes) as contexts:
            env = {
                "MONGO_URL": mongo_url,
                "REDIS_URL": redis_url,
                "KEY_PREFIX": PREFIX,
                # The bench writes owners in lower case, as wallets first requires.
                "OWNER_FIRST": "auto",
            }
            if partition_size is not None:
                env["PARTITION_SIZE"] = str(partition_size)
            sites = {
                size: Site(size, ctx, Workers(group, {**env, "MONGO_DB": _db(size)}, str(size)))
                for size, ctx in contexts.items()
            }
            ctx = contexts[sizes[0]]
            asker = Asker(redis_url, ctx.redis, PREFIX, group)
            restart = None if configured.mongo_url else _restarter(group, mongo_url, ctx)
            try:
                yield Bench(sites, asker, store_pid, tries, restart)
            finally:
                asker.close()
                _forget_queues(ctx.redis, [site.workers.queue for site in sites.values()])


def _forget_queues(redis: Redis, queues: list[str]) -> None:
    """Remove the bindings Celery's Redis transport keeps for each of the bench's queues,
    which would otherwise stay in a Redis of the user's own."""
    names = ("_kombu.binding.{}", "_kombu.binding_permanent.{}", "{}")
    redis.unlink(*(name.format(queue) for queue in queues for name in names))


def _restarter(group: Group, mongo_url: str, ctx: Context) -> Callable[[], int]:
    """Stops the bench's store server and starts it again on its data and port."""
    port = int(mongo_url.rstrip("/").rsplit(":", 1)[1])

    def restart() -> int:
        group.stop_child("store")
        start_store(group, port)
        # The first request on a connection to the old server fails and clears the pool.
        for _ in range(RECONNECT_TRIES):
            try:
                ctx.stores.passports.database.command("ping")
                break
            except PyMongoError:
                time.sleep(0.2)
        return next(child.pid for name, child in group.children if name == "store")

    return restart


@contextmanager
def _connected(mongo_url: str, redis_url: str, sizes: list[int]) -> Iterator[dict[int, Context]]:
    """The bench's own connections, with a database per size; the bench's data goes with them."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    # A wrong REDIS_URL is named here, not after the workers' two minutes to start.
    redis.ping()
    client = connect(Settings(mongo_url=mongo_url))
    try:
        client.admin.command("ping")  # likewise a store out of reach, before anything to undo
    except PyMongoError:
        client.close()
        raise
    contexts = {}
    for size in sizes:
        settings = Settings(
            mongo_url=mongo_url, mongo_db=_db(size), redis_url=redis_url, key_prefix=PREFIX,
            owner_first="auto",
        )  # fmt: skip
        contexts[size] = Context(settings, stores(client, settings), redis)
    try:
        yield contexts
    finally:
        for size in sizes:
            client.drop_database(_db(size))
        client.close()
        stale = list(redis.scan_iter(f"{PREFIX}:*"))
        if stale:
            redis.unlink(*stale)


def _db(size: int) -> str:
    return f"{DB}_{size}"


def _machine() -> str:
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{platform.platform()}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"
    )
