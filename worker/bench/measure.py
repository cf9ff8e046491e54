"""One benchmark run: each audience by a real worker process, and the floor of the same I/O.

The floor reads the same passports with the same queries and projection, and writes the same
number of members to Redis in pipelined SADDs, doing nothing else. The ratio of the worker's
time to the floor's says how close materialization stays to the I/O it cannot avoid.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bson import ObjectId

from worker.audience.fields import AudienceCreate
from worker.audience.rule import Rule
from worker.bench import procs, synthetic
from worker.bench.workers import Asker, Workers
from worker.materialize.base import Context
from worker.materialize.evaluate import ScanLimits, ScanStats, passport_batches
from worker.materialize.publish import choose_order
from worker.materialize.run import Request, materialize
from worker.store import audiences, wallets

WRITE_CHUNK = 10_000
# The audience the two-worker comparison runs: a full scan that reads every owner's profile.
SPLIT_AUDIENCE = "inactive 365 d"
# Owner rules that either order can evaluate: one selective, one broad.
ORDER_AUDIENCES = ("selective owners", "custodial owners")


@dataclass
class Bench:
    """The bench's own connections (to load and to measure the floor), and the workers."""

    ctx: Context
    workers: Workers
    asker: Asker
    store_pid: int | None  # None: a store the bench did not start
    tries: int = 3  # runs of each audience (and of its floor) at each size; the best is kept
    # Restarts the store's server on its data and returns its pid; None where the bench did
    # not start the store.
    restart_store: Callable[[], int] | None = None

    def settle(self) -> None:
        """Measure on a store that has just started, not one that has just taken a load.

        nx-27017 reads more slowly for a while after a bulk load of a million documents in
        the same process: the same wallets-first read took 5.8 to 9.8 s after the load and
        4.8 s after a restart. That would be charged to the size, not to the worker. The
        workers start again too, so none of them holds a connection to the old server.
        """
        if self.restart_store is None:
            return
        self.store_pid = self.restart_store()
        self.workers.restart()


@dataclass(frozen=True)
class Row:
    size: int
    audience: str
    seconds: float
    passports_read: int
    floor_seconds: float
    # The floor plus one raw read of each owner's profile, for rules that need profiles.
    profiles_floor_seconds: float | None
    rss_growth_mb: float
    store_round_trips: int
    redis_round_trips: int
    recipients: int
    parts: int
    tries: int = 1  # runs (and floors) measured; the row holds the best of them

    @property
    def per_second(self) -> float:
        return self.passports_read / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds if self.floor_seconds else 0.0

    @property
    def profiles_ratio(self) -> float | None:
        floor = self.profiles_floor_seconds
        return self.seconds / floor if floor else None


@dataclass(frozen=True)
class Split:
    """One audience run by `workers` processes, with CPU seconds spent by each process."""

    size: int
    audience: str
    workers: int
    seconds: float
    parts: int
    store_cpu_s: float
    redis_cpu_s: float
    worker_cpu_s: tuple[float, ...]


@dataclass(frozen=True)
class Order:
    """One owner rule evaluated wallets first and passports first, and the order auto picks."""

    size: int
    audience: str
    picked: str
    wallets_first_s: float
    passports_first_s: float
    agree: bool  # both orders gave the same countNFT and countOwner


def audience_set(size: int) -> list[tuple[str, dict[str, Any]]]:
    step = max(1, size // 10_000)
    token_ids = [str(n) for n in range(0, size, step)][:10_000]
    return [
        ("broad tag or", {"tags": ["tag-00", "tag-01"], "tagRule": "or"}),
        ("narrow tag all", {"tags": ["tag-00", "tag-30"], "tagRule": "all"}),
        ("productIds", {"tagRule": "productIds", "productIds": synthetic.PRODUCTS[:5]}),
        ("10,000 tokenIds", {"tagRule": "tokenIds", "tokenIds": token_ids}),
        ("selective owners", {"countries": "Japan", "custodialWallet": "yes"}),
        ("custodial owners", {"custodialWallet": "yes"}),
        ("inactive 365 d", {"isWalletActiveSinceNumberOfDays": 365, "walletActivity": "inactive"}),
        ("uniqueOwner", {"uniqueOwner": True}),
    ]


def run_size(bench: Bench, size: int) -> list[Row]:
    _fresh_database(bench.ctx)
    synthetic.load(bench.ctx.stores, size)
    bench.settle()
    _warm_up(bench, size)
    return [_measure(bench, size, name, body) for name, body in audience_set(size)]


def split(bench: Bench, size: int, workers: int) -> Split:
    """Run the split audience with `workers` worker processes (started as needed)."""
    while len(bench.workers.pids) < workers:
        bench.workers.add()
    body = dict(audience_set(size))[SPLIT_AUDIENCE]
    audience_id = _insert(bench.ctx, SPLIT_AUDIENCE, body)
    pids = bench.workers.pids[:workers]
    before = _cpu(bench, pids)
    started = time.perf_counter()
    figures = bench.asker.run(audience_id, synthetic.END)
    seconds = time.perf_counter() - started
    after = _cpu(bench, pids)
    spent = [end - start for start, end in zip(before, after, strict=True)]
    return Split(
        size, SPLIT_AUDIENCE, workers, seconds, int(figures["parts"]), spent[0], spent[1],
        tuple(spent[2:]),
    )  # fmt: skip


def orders(bench: Bench, size: int) -> list[Order]:
    """Time each order-sensitive audience both ways, in the bench's own process."""
    found = []
    for name in ORDER_AUDIENCES:
        audience_id = _insert(bench.ctx, name, dict(audience_set(size))[name])
        runs = {order: _in_process(bench.ctx, audience_id, order) for order in ORDERS}
        picked = "wallets" if _auto_picks_wallets(bench.ctx, audience_id) else "passports"
        (by_wallets, counts), (by_passports, others) = runs["wallets"], runs["passports"]
        found.append(Order(size, name, picked, by_wallets, by_passports, counts == others))
    return found


ORDERS = ("wallets", "passports")


def _in_process(ctx: Context, audience_id: ObjectId, order: str) -> tuple[float, tuple]:
    forced = Context(ctx.settings.model_copy(update={"owner_first": order}), ctx.stores, ctx.redis)
    started = time.perf_counter()
    outcome = materialize(forced, Request(audience_id, as_of=synthetic.END))
    seconds = time.perf_counter() - started
    if outcome.status != "done":
        raise RuntimeError(f"the {order}-first run ended {outcome.status}")
    return seconds, (outcome.count_nft, outcome.count_owner)


def _auto_picks_wallets(ctx: Context, audience_id: ObjectId) -> bool:
    rule = Rule.from_document(audiences.load(ctx.stores.audiences, audience_id) or {})
    auto = Context(ctx.settings.model_copy(update={"owner_first": "auto"}), ctx.stores, ctx.redis)
    return choose_order(auto, rule, synthetic.END, ScanStats()) == "wallets"


def _cpu(bench: Bench, pids: list[int]) -> list[float]:
    return [
        procs.cpu_seconds(bench.store_pid) if bench.store_pid else float("nan"),
        procs.redis_cpu_seconds(bench.ctx.redis),
        *(procs.cpu_seconds(pid) for pid in pids),
    ]


def _warm_up(bench: Bench, size: int) -> None:
    """One untimed run of the shortest audience per worker process.

    A worker's first task pays once for what the process keeps: imports, connections, the
    first allocations (80 MB at 100,000 passports). That is no part of any audience's cost.
    """
    name, body = audience_set(size)[1]
    for _ in bench.workers.pids:
        bench.asker.run(_insert(bench.ctx, name, body), synthetic.END)


def _fresh_database(ctx: Context) -> None:
    """Start each size on an empty database of the bench's own.

    Deleting the last size's passports instead would leave a SQLite-backed store (nx-27017)
    a write-ahead log as big as that size, through which every later read goes: at a
    million passports it made the same scan take half as long again.
    """
    database = ctx.stores.passports.database
    database.client.drop_database(database.name)


def _insert(ctx: Context, name: str, body: dict[str, Any]) -> ObjectId:
    fields = AudienceCreate.model_validate({"name": name, **body}).stored()
    doc = audiences.new_document(synthetic.BRAND, fields, synthetic.END)
    audiences.insert(ctx.stores.audiences, doc)
    return ObjectId(doc["_id"])


def _measure(bench: Bench, size: int, name: str, body: dict[str, Any]) -> Row:
    """The best of `bench.tries` runs of an audience, against the best of as many floors.

    A run of a second or two moves by up to a third from one try to the next on a shared
    machine, more than the gap being measured. Every audience is tried as often at every
    size, each time as a new audience so no result is reused, so that sizes are compared
    like for like.
    """
    tries = [_try(bench, size, name, body) for _ in range(bench.tries)]
    rows = [row for row, _ in tries]
    profiles = [floor for _, (_, floor) in tries if floor is not None]
    return replace(
        min(rows, key=lambda row: row.seconds),
        floor_seconds=min(floor for _, (floor, _) in tries),
        profiles_floor_seconds=min(profiles) if profiles else None,
        rss_growth_mb=max(row.rss_growth_mb for row in rows),
        tries=len(rows),
    )


def _try(
    bench: Bench, size: int, name: str, body: dict[str, Any]
) -> tuple[Row, tuple[float, float | None]]:
    """One run of a new audience by the workers, then the floor of its I/O."""
    audience_id = _insert(bench.ctx, name, body)
    pids = bench.workers.pids
    baseline = {pid: procs.rss_mb(pid) for pid in pids}
    for pid in pids:
        procs.reset_peak(pid)
    started = time.perf_counter()
    figures = bench.asker.run(audience_id, synthetic.END)
    seconds = time.perf_counter() - started
    growth = max(procs.peak_rss_mb(pid) - baseline[pid] for pid in pids)
    doc = audiences.load(bench.ctx.stores.audiences, audience_id) or {}
    recipients = int(figures["recipients"])
    rule = Rule.from_document(doc)
    floors = _floor(bench.ctx, rule, recipients)
    row = Row(
        size,
        name,
        seconds,
        int(figures["passportsRead"]),
        *floors,
        max(0.0, growth),
        int(figures["storeRoundTrips"]),
        int(figures["redisRoundTrips"]),
        recipients,
        int(figures["parts"]),
    )
    return row, floors


def _floor(ctx: Context, rule: Rule, members: int) -> tuple[float, float | None]:
    """The floor, and for an owner rule the floor plus reading each owner's profile once."""
    limits = ScanLimits(ctx.settings.batch_size, ctx.settings.in_chunk_size)
    owners: set[str] = set()
    started = time.perf_counter()
    for batch in passport_batches(ctx.stores, rule, limits):
        owners.update(p["owner"] for p in batch)
    scratch = f"{ctx.settings.key_prefix}:bench-floor:{uuid.uuid4().hex}"
    for start in range(0, members, WRITE_CHUNK):
        pipe = ctx.redis.pipeline(transaction=False)
        pipe.sadd(scratch, *(f"m{n}" for n in range(start, min(members, start + WRITE_CHUNK))))
        pipe.execute()
    elapsed = time.perf_counter() - started
    ctx.redis.unlink(scratch)
    if rule.owner_rule(synthetic.END).is_open:
        return elapsed, None
    started = time.perf_counter()
    wallets.profiles(ctx.stores.wallets, owners, ctx.settings.in_chunk_size)
    return elapsed, elapsed + time.perf_counter() - started
