"""One benchmark run: each audience by the worker, and the floor of the same I/O done raw.

The floor reads the same passports with the same queries and projection, and writes the same
number of members to Redis in pipelined SADDs, doing nothing else. The ratio of the worker's
time to the floor's says how close materialization stays to the I/O it cannot avoid.
"""

from __future__ import annotations

import resource
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from worker.audience.fields import AudienceCreate
from worker.audience.rule import Rule
from worker.bench import synthetic
from worker.materialize.evaluate import ScanLimits, passport_batches
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences

WRITE_CHUNK = 10_000


@dataclass(frozen=True)
class Row:
    size: int
    audience: str
    seconds: float
    passports_read: int
    floor_seconds: float
    rss_growth_mb: float
    store_round_trips: int
    redis_round_trips: int
    recipients: int

    @property
    def per_second(self) -> float:
        return self.passports_read / self.seconds if self.seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.seconds / self.floor_seconds if self.floor_seconds else 0.0


def audience_set(size: int) -> list[tuple[str, dict[str, Any]]]:
    step = max(1, size // 10_000)
    token_ids = [str(n) for n in range(0, size, step)][:10_000]
    return [
        ("broad tag or", {"tags": ["tag-00", "tag-01"], "tagRule": "or"}),
        ("narrow tag all", {"tags": ["tag-00", "tag-30"], "tagRule": "all"}),
        ("productIds", {"tagRule": "productIds", "productIds": synthetic.PRODUCTS[:5]}),
        ("10,000 tokenIds", {"tagRule": "tokenIds", "tokenIds": token_ids}),
        ("selective owners", {"countries": "Japan", "custodialWallet": "yes"}),
        ("inactive 365 d", {"isWalletActiveSinceNumberOfDays": 365, "walletActivity": "inactive"}),
        ("uniqueOwner", {"uniqueOwner": True}),
    ]


def run_size(ctx: Context, size: int) -> list[Row]:
    synthetic.load(ctx.stores, size)
    return [_measure(ctx, size, name, body) for name, body in audience_set(size)]


def _measure(ctx: Context, size: int, name: str, body: dict[str, Any]) -> Row:
    fields = AudienceCreate.model_validate({"name": name, **body}).stored()
    doc = audiences.new_document(synthetic.BRAND, fields, synthetic.END)
    audiences.insert(ctx.stores.audiences, doc)
    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    outcome = materialize(ctx, Request(ObjectId(doc["_id"]), as_of=synthetic.END))
    seconds = time.perf_counter() - started
    rss_growth = _peak_rss_mb() - rss_before
    floor = _floor(ctx, Rule.from_document(doc), outcome.recipients or 0)
    return Row(
        size,
        name,
        seconds,
        outcome.passports_read,
        floor,
        rss_growth,
        outcome.store_round_trips,
        outcome.redis_round_trips,
        outcome.recipients or 0,
    )


def _floor(ctx: Context, rule: Rule, members: int) -> float:
    limits = ScanLimits(ctx.settings.batch_size, ctx.settings.in_chunk_size)
    started = time.perf_counter()
    for _ in passport_batches(ctx.stores, rule, limits):
        pass
    scratch = f"{ctx.settings.key_prefix}:bench-floor:{uuid.uuid4().hex}"
    for start in range(0, members, WRITE_CHUNK):
        pipe = ctx.redis.pipeline(transaction=False)
        pipe.sadd(scratch, *(f"m{n}" for n in range(start, min(members, start + WRITE_CHUNK))))
        pipe.execute()
    elapsed = time.perf_counter() - started
    ctx.redis.unlink(scratch)
    return elapsed


def _peak_rss_mb() -> float:
    # ru_maxrss is the process's peak so far, in KiB on Linux: its growth is what a run added.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[Row], machine: str, when: datetime) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {when:%Y-%m-%d %H:%M} UTC on {machine}, with `audience-worker bench`.",
        "Ratio: the worker's time over the floor's (the same passport reads and Redis writes",
        "done raw). RSS: growth of the measuring process's peak during the run.",
        "",
        "| passports | audience | seconds | passports/s | ratio to floor | RSS growth MB "
        "| store round trips | Redis round trips | recipients |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row.size:,} | {row.audience} | {row.seconds:.2f} | {row.per_second:,.0f} "
            f"| {row.ratio:.2f} | {row.rss_growth_mb:.1f} | {row.store_round_trips} "
            f"| {row.redis_round_trips} | {row.recipients:,} |"
        )
    return "\n".join(lines) + "\n"
