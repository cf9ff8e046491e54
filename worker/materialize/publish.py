"""Streaming a rule's members into a run's build keys, and publishing the finished build.

Both halves serve a whole run in one task and a partitioned run alike: parts each stream
their range into the same build keys, and whichever part ends last publishes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from worker import metrics
from worker.audience.rule import Rule
from worker.cache.keys import AudienceKeys
from worker.cache.result import ResultBuilder, drop
from worker.instants import iso
from worker.logs import event
from worker.materialize import wallets_first
from worker.materialize.base import Claimed, Context, Outcome
from worker.materialize.evaluate import Bounds, ScanLimits, ScanStats, matches
from worker.settings import Settings
from worker.store import audiences

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Totals:
    """What a run did, summed over its parts."""

    count_nft: int
    passports_read: int
    store_round_trips: int
    redis_round_trips: int
    parts: int = 1


def epoch_ms() -> int:
    return int(time.time() * 1000)


def builder_for(ctx: Context, audience_id: ObjectId, run_id: str) -> ResultBuilder:
    settings = ctx.settings
    return ResultBuilder(
        ctx.redis, settings.key_prefix, str(audience_id), run_id, settings.build_ttl_s
    )


def scan_limits(settings: Settings, owner_first: str | None = None) -> ScanLimits:
    """The settings' limits; `owner_first` fixes an order chosen beforehand."""
    return ScanLimits(
        settings.batch_size,
        settings.in_chunk_size,
        owner_first or settings.owner_first,
        settings.owner_first_ratio,
    )


def choose_order(ctx: Context, rule: Rule, as_of: datetime, stats: ScanStats) -> str:
    """Which collection this run reads first, "wallets" or "passports" (see wallets_first)."""
    owner_rule = rule.owner_rule(as_of)
    limits = scan_limits(ctx.settings)
    scan = wallets_first.Scan(ctx.stores, rule, owner_rule, limits, stats, (None, None))
    return "wallets" if wallets_first.chosen(scan) else "passports"


def collect(
    ctx: Context,
    claimed: Claimed,
    as_of: datetime,
    builder: ResultBuilder,
    stats: ScanStats,
    order: str,
    bounds: Bounds = (None, None),
) -> int:
    """Stream the members (within `bounds`) into the build keys, reading in the `order` chosen
    for the whole run; returns how many."""
    rule = claimed.rule
    lease = Lease(ctx, builder.audience_id, claimed.run_id)
    limits = scan_limits(ctx.settings, order)
    count_nft = 0
    for batch in matches(ctx.stores, rule, as_of, limits, stats, bounds):
        lease.keep()
        if ctx.on_progress:
            ctx.on_progress(stats.passports_read)
        count_nft += len(batch)
        owners = {owner for _, owner in batch}
        if rule.unique_owner:
            builder.keep_first([(owner, token) for token, owner in batch])
            builder.add((), owners)
        else:
            builder.add((token for token, _ in batch), owners)
    return count_nft


class Lease:
    """Renews a run's lease while it works, so that a long run is not taken for a stuck one."""

    def __init__(self, ctx: Context, audience_id: str, run_id: str):
        self._ctx = ctx
        self._audience_id = ObjectId(audience_id)
        self._run_id = run_id
        self._renewed = time.monotonic()

    def keep(self) -> None:
        lease_s = self._ctx.settings.lease_s
        # A third of the lease between renewals leaves two thirds of slack for a slow batch.
        if time.monotonic() - self._renewed < lease_s / 3:
            return
        until = epoch_ms() + lease_s * 1000
        audiences.extend_lease(self._ctx.stores.audiences, self._audience_id, self._run_id, until)
        self._renewed = time.monotonic()


def finish(
    ctx: Context,
    audience_id: ObjectId,
    claimed: Claimed,
    as_of: datetime,
    started_ms: int,
    totals: Totals,
) -> Outcome:
    """Count, switch the build in, write the counts back, and say how it went."""
    builder = builder_for(ctx, audience_id, claimed.run_id)
    try:
        unique = claimed.rule.unique_owner
        recipients = builder.firsts_to_recipients() if unique else totals.count_nft
        count_owner = builder.owner_count()
        duration_ms = max(0, epoch_ms() - started_ms)
        result: dict[str, Any] = {
            "revision": claimed.revision,
            "evaluatedAt": as_of,
            "countNFT": totals.count_nft,
            "countOwner": count_owner,
            "durationMs": duration_ms,
            "finishedAtMs": epoch_ms(),
        }
        meta = _meta(result, recipients)
        published = builder.publish(meta, claimed.seq, ctx.settings.cache_ttl_s)
    finally:
        builder.discard()
    status = _write_back(ctx, audience_id, claimed, result) if published else "outrun"
    metrics.record_run(ctx.redis, ctx.settings.key_prefix, status, duration_ms)
    outcome = Outcome(
        status,
        claimed.revision,
        totals.count_nft,
        count_owner,
        recipients,
        duration_ms,
        totals.passports_read,
        totals.store_round_trips,
        totals.redis_round_trips + builder.round_trips,
    )
    _report(ctx, str(audience_id), claimed, outcome, totals.parts)
    return outcome


def _meta(result: dict[str, Any], recipients: int) -> dict[str, Any]:
    keys = ("revision", "evaluatedAt", "countNFT", "countOwner")
    fields = {key: result[key] for key in keys}
    return fields | {"evaluatedAt": iso(result["evaluatedAt"]), "recipients": recipients}


def _write_back(
    ctx: Context, audience_id: ObjectId, claimed: Claimed, result: dict[str, Any]
) -> str:
    if audiences.record_result(ctx.stores.audiences, audience_id, claimed.seq, result):
        return "done"
    if audiences.load(ctx.stores.audiences, audience_id) is None:
        # Deleted while running: what was just switched in must not outlive it.
        drop(ctx.redis, ctx.settings.key_prefix, str(audience_id))
        return "deleted"
    return "outrun"


def _report(ctx: Context, audience_id: str, claimed: Claimed, outcome: Outcome, parts: int) -> None:
    fields: dict[str, str | int] = {
        "seq": claimed.seq,
        "revision": claimed.revision,
        "status": outcome.status,
        "durationMs": outcome.duration_ms or 0,
        "passportsRead": outcome.passports_read,
        "storeRoundTrips": outcome.store_round_trips,
        "redisRoundTrips": outcome.redis_round_trips,
        "parts": parts,
        "recipients": outcome.recipients or 0,
    }
    # The last run's figures, for operators and the benchmark; never the members themselves.
    key = AudienceKeys.last_run(ctx.settings.key_prefix, audience_id)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(key, mapping={name: value for name, value in fields.items()})
    pipe.expire(key, ctx.settings.cache_ttl_s)
    pipe.execute()
    event(
        log,
        "run.end",
        audience_id=audience_id,
        revision=claimed.revision,
        status=outcome.status,
        count_nft=outcome.count_nft,
        count_owner=outcome.count_owner,
        duration_ms=outcome.duration_ms,
        store_round_trips=outcome.store_round_trips,
        redis_round_trips=outcome.redis_round_trips,
        parts=parts,
    )
