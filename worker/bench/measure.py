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
from statistics import median_low
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
# Owner rules that either order can evaluate: one selective, one broad, and one that admits
# every owner with a country (not among the audiences measured against the floor).
ORDER_AUDIENCES = ("selective owners", "custodial owners", "any country")
ANY_COUNTRY = {"countries": list(synthetic.COUNTRIES)}


@dataclass
class Site:
    """One size's brand: its own database, and the worker processes that read it."""

    size: int
    ctx: Context
    workers: Workers


@dataclass
class Bench:
    """The sizes' databases and workers, the bench's own connections (to load and to measure
    the floor), and the client that asks the workers to run."""

    sites: dict[int, Site]
    asker: Asker
    store_pid: int | None  # None: a store the bench did not start
    tries: int = 3  # runs of each audience (and of its floor) at each size; the middle is kept
    # Restarts the store's server on its data and returns its pid; None where the bench did
    # not start the store.
    restart_store: Callable[[], int] | None = None

    def settle(self) -> None:
        """Measure on a store that has just started, not one that has just taken a load.

        nx-27017 reads more slowly for a while after a bulk load of a million documents in
        the same process: the same wallets-first read took 5.8 to 9.8 s after the load and
        4.8 s after a restart. That would be charged to the size, not to the worker. The
        workers start only then, so none of them holds a connection to the old server.
        """
        if self.restart_store is not None:
            self.store_pid = self.restart_store()
        for site in self.sites.values():
            site.workers.restart()
            if not site.workers.pids:
                site.workers.add()


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
    tries: int = 1  # runs (and floors) measured; the row holds the middle one of each

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
    other_wallets: int = 0  # profiles of other brands' owners in the wallet store


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


def load(site: Site) -> None:
    """Load the site's brand into an empty database of its own."""
    _fresh_database(site.ctx)
    synthetic.load(site.ctx.stores, site.size)


def warm_up(bench: Bench) -> None:
    """One untimed run of the shortest audience per worker process.

    A worker's first task pays once for what the process keeps: imports, connections, the
    first allocations (80 MB at 100,000 passports). That is no part of any audience's cost.
    """
    for site in bench.sites.values():
        name, body = audience_set(site.size)[1]
        for _ in site.workers.pids:
            bench.asker.run(_insert(site.ctx, name, body), synthetic.END, site.workers.queue)


def measure(bench: Bench, name: str) -> list[Row]:
    """The audience at every size: `bench.tries` rounds, each running it once at each size.

    A shared machine's speed drifts by a fifth and more over a minute or two. Were the sizes
    measured one after another, that drift would be charged to the larger size; taken in
    turns, every size meets the same machine, and the time at one size over the time at
    another is the worker's own growth.
    """
    tries: dict[int, list[tuple[Row, tuple[float, float | None]]]] = {}
    for _ in range(bench.tries):
        for site in bench.sites.values():
            body = dict(audience_set(site.size))[name]
            tries.setdefault(site.size, []).append(_try(bench, site, name, body))
    return [_typical(found) for found in tries.values()]


def split(bench: Bench, site: Site, workers: int) -> Split:
    """Run the split audience with `workers` worker processes (started as needed)."""
    while len(site.workers.pids) < workers:
        site.workers.add()
    body = dict(audience_set(site.size))[SPLIT_AUDIENCE]
    audience_id = _insert(site.ctx, SPLIT_AUDIENCE, body)
    pids = site.workers.pids[:workers]
    before = _cpu(bench, site, pids)
    started = time.perf_counter()
    figures = bench.asker.run(audience_id, synthetic.END, site.workers.queue)
    seconds = time.perf_counter() - started
    after = _cpu(bench, site, pids)
    spent = [end - start for start, end in zip(before, after, strict=True)]
    return Split(
        site.size, SPLIT_AUDIENCE, workers, seconds, int(figures["parts"]), spent[0], spent[1],
        tuple(spent[2:]),
    )  # fmt: skip


def orders(site: Site, other_wallets: int = 0) -> list[Order]:
    """Time each order-sensitive audience both ways, in the bench's own process."""
    bodies = {**dict(audience_set(site.size)), "any country": ANY_COUNTRY}
    found = []
    for name in ORDER_AUDIENCES:
        audience_id = _insert(site.ctx, name, bodies[name])
        runs = {order: _in_process(site.ctx, audience_id, order) for order in ORDERS}
        picked = "wallets" if _auto_picks_wallets(site.ctx, audience_id) else "passports"
        (by_wallets, counts), (by_passports, others) = runs["wallets"], runs["passports"]
        agree = counts == others
        found.append(Order(site.size, name, picked, by_wallets, by_passports, agree, other_wallets))
    return found


def shared_orders(site: Site) -> list[Order]:
    """The order-sensitive audiences again, once the wallet store also holds other brands'
    owners: what a filter on wallets then matches is no longer a measure of the brand alone.

    It changes the site's data, so it comes after everything else measured on it.
    """
    return orders(site, synthetic.add_other_wallets(site.ctx.stores, site.size))


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


def _cpu(bench: Bench, site: Site, pids: list[int]) -> list[float]:
    return [
        procs.cpu_seconds(bench.store_pid) if bench.store_pid else float("nan"),
        procs.redis_cpu_seconds(site.ctx.redis),
        *(procs.cpu_seconds(pid) for pid in pids),
    ]


def _fresh_database(ctx: Context) -> None:
    """Start each size on an empty database of its own, dropping what a killed run left.

    One database per size, rather than one whose passports each size replaces: deleting a
    size's passports leaves a SQLite-backed store (nx-27017) a write-ahead log as big as that
    size, through which every later read goes; at a million passports it made the same scan
    take half as long again.
    """
    database = ctx.stores.passports.database
    database.client.drop_database(database.name)


def _insert(ctx: Context, name: str, body: dict[str, Any]) -> ObjectId:
    fields = AudienceCreate.model_validate({"name": name, **body}).stored()
    doc = audiences.new_document(synthetic.BRAND, fields, synthetic.END)
    audiences.insert(ctx.stores.audiences, doc)
    return ObjectId(doc["_id"])


def _typical(tries: list[tuple[Row, tuple[float, float | None]]]) -> Row:
    """An audience's middle run at one size (the lower middle of an even count), against the
    middle of its floors.

    A run of a second or two moves by up to a third from one try to the next on a shared
    machine, more than the gap being measured, while a run of a minute averages the same
    swings out. The fastest of a few short runs therefore lands further below their typical
    time than the fastest of a few long ones: taking the best of each would charge that gap
    to the larger size. The middle one of each compares typical with typical. Every audience
    is tried as often at every size, each time as a new audience so no result is reused.
    """
    rows = sorted((row for row, _ in tries), key=lambda row: row.seconds)
    profiles = [floor for _, (_, floor) in tries if floor is not None]
    return replace(
        rows[(len(rows) - 1) // 2],
        floor_seconds=median_low(floor for _, (floor, _) in tries),
        profiles_floor_seconds=median_low(profiles) if profiles else None,
        rss_growth_mb=max(row.rss_growth_mb for row in rows),
        tries=len(rows),
    )


def _try(
    bench: Bench, site: Site, name: str, body: dict[str, Any]
) -> tuple[Row, tuple[float, float | None]]:
    """One run of a new audience by the site's workers, then the floor of its I/O."""
    ctx = site.ctx
    audience_id = _insert(ctx, name, body)
    pids = site.workers.pids
    baseline = {pid: procs.rss_mb(pid) for pid in pids}
    for pid in pids:
        procs.reset_peak(pid)
    started = time.perf_counter()
    figures = bench.asker.run(audience_id, synthetic.END, site.workers.queue)
    seconds = time.perf_counter() - started
    growth = max(procs.peak_rss_mb(pid) - baseline[pid] for pid in pids)
    doc = audiences.load(ctx.stores.audiences, audience_id) or {}
    recipients = int(figures["recipients"])
    rule = Rule.from_document(doc)
    floors = _floor(ctx, rule, recipients)
    row = Row(
        site.size,
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
