"""Partitioned runs: one big audience evaluated by several workers, switched in once.

The run that claims the audience cuts the brand's passports into key ranges and sends one
part per range. Every part writes into the same build keys, which hold only sets and a
per-owner minimum, so the order in which parts run cannot change the result: it is exactly
the one a single task would publish. The part that finds all the others done publishes it,
with the same guarded switch and write-back as a single run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.collection import Collection

from worker.audience.rule import Rule, real_owner
from worker.cache.keys import AudienceKeys
from worker.logs import event
from worker.materialize.base import Claimed, Context, Outcome
from worker.materialize.evaluate import ScanStats, scan_key
from worker.materialize.publish import Totals, builder_for, collect, epoch_ms, finish
from worker.store import audiences
from worker.store import passports as passports_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """One `audiences.materialize_part` message: a key range of a claimed run (owners, or
    tokenIds for a rule that reads no wallet profile; see `scan_key`)."""

    audience_id: ObjectId
    run_id: str
    seq: int
    revision: int
    as_of: datetime
    index: int
    parts: int
    after: str | None
    upto: str | None


def split_points(
    passports: Collection[Any], brand_id: str, size: int, key: str, stats: ScanStats | None = None
) -> list[str]:
    """The keys (owners or tokenIds) that cut the brand's passports into ranges of about
    `size`, in the order a scan by `key` walks them.

    Each cut is the key of the size-th passport past the last cut, found by skipping along
    the index, so planning reads one key per cut. Cut by owner, all of an owner's passports
    fall in one range (which may exceed `size` by what its last owner holds), so no two parts
    read the same owner's profile. A brand of at most `size` passports gets none. Its
    requests are counted in `stats`, when given.
    """
    asked = stats or ScanStats()
    cuts: list[str] = []
    while True:
        # Burned passports are counted too: a filter on the owner would make the store read
        # every skipped passport instead of only the index.
        query: dict[str, Any] = {"brandId": {"$eq": brand_id}}
        if cuts:
            query[key] = {"$gt": cuts[-1]}
        found = passports.find(query, {"_id": 0, key: 1}).sort(passports_store.ORDERS[key])
        keys = [doc.get(key) for doc in found.skip(size - 1).limit(1)]
        asked.store_round_trips += 1
        cut = keys[0] if keys else None
        if not isinstance(cut, str) or (key == "owner" and real_owner(cut) is None):
            return cuts  # too few passports left, or only burned ones so far
        asked.store_round_trips += 1
        if not _any_after(passports, brand_id, key, cut):
            return cuts
        cuts.append(cut)


def _any_after(passports: Collection[Any], brand_id: str, key: str, cut: str) -> bool:
    # A cut with nothing after it would leave the last range empty.
    query: dict[str, Any] = {"brandId": {"$eq": brand_id}, "owner": passports_store.HAS_OWNER}
    query[key] = {**query.get(key, {}), "$gt": cut}
    return passports.find_one(query, {"_id": 0, key: 1}) is not None


def plan(ctx: Context, rule: Rule, stats: ScanStats) -> list[str]:
    """The cuts of a run worth splitting; none when it runs as one task."""
    size = ctx.settings.partition_size
    if ctx.send_parts is None or size <= 0 or rule.tag_rule == "tokenIds":
        return []
    return split_points(ctx.stores.passports, rule.brand_id, size, scan_key(rule), stats)


def start(
    ctx: Context,
    audience_id: ObjectId,
    claimed: Claimed,
    as_of: datetime,
    cuts: list[str],
    planning: ScanStats,
) -> Outcome:
    """Record the run's plan, with the store round trips that made it, then hand its parts
    to the workers."""
    assert ctx.send_parts is not None
    edges: list[str | None] = [None, *cuts, None]
    parts = [
        Part(audience_id, claimed.run_id, claimed.seq, claimed.revision, as_of, i, len(cuts) + 1,
             edges[i], edges[i + 1])
        for i in range(len(cuts) + 1)
    ]  # fmt: skip
    ledger = AudienceKeys.parts(ctx.settings.key_prefix, str(audience_id), claimed.run_id)
    pipe = ctx.redis.pipeline(transaction=True)
    # Counted into the run's totals with the parts' own (each "store:" and "redis:" field is
    # summed); the plan's Redis round trip is this pipeline.
    started: dict[str, int] = {
        "parts": len(parts),
        "startedMs": epoch_ms(),
        "store:plan": planning.store_round_trips,
        "redis:plan": 1,
    }
    pipe.hset(ledger, mapping={name: value for name, value in started.items()})
    pipe.expire(ledger, ctx.settings.build_ttl_s)
    pipe.execute()
    ctx.send_parts(parts)
    event(
        log,
        "run.partitioned",
        audience_id=str(audience_id),
        revision=claimed.revision,
        seq=claimed.seq,
        parts=len(parts),
    )
    return Outcome("partitioned", claimed.revision)


def run_part(ctx: Context, part: Part) -> Outcome:
    """Evaluate one range; the last part to finish publishes the whole run."""
    doc = audiences.load(ctx.stores.audiences, part.audience_id)
    if doc is None:
        return Outcome("missing")
    state = doc.get("materialization") or {}
    if doc["revision"] != part.revision or state.get("runId") != part.run_id:
        return Outcome("superseded", doc["revision"])
    ledger = AudienceKeys.parts(ctx.settings.key_prefix, str(part.audience_id), part.run_id)
    if not ctx.redis.exists(ledger):
        return Outcome("moot", part.revision)  # published already, or abandoned and expired
    claimed = Claimed(part.run_id, part.seq, part.revision, Rule.from_document(doc))
    builder = builder_for(ctx, part.audience_id, part.run_id)
    stats = ScanStats()
    lease_until = epoch_ms() + ctx.settings.lease_s * 1000
    audiences.extend_lease(ctx.stores.audiences, part.audience_id, part.run_id, lease_until)
    # Runs are only split when they read the passports first.
    bounds = (part.after, part.upto)
    count = collect(ctx, claimed, part.as_of, builder, stats, "passports", bounds)
    finished = _record_part(ctx, ledger, part, count, stats, builder.round_trips)
    if finished is None:
        return Outcome("part_done", part.revision, passports_read=stats.passports_read)
    started_ms, totals = finished
    return finish(ctx, part.audience_id, claimed, part.as_of, started_ms, totals)


def _record_part(
    ctx: Context, ledger: str, part: Part, count: int, stats: ScanStats, redis_trips: int
) -> tuple[int, Totals] | None:
    """Note this part as done; the plan's start and the totals when it was the last one.

    Setting (not adding) the part's fields keeps a part that runs twice from counting twice.
    """
    fields = {
        f"count:{part.index}": count,
        f"read:{part.index}": stats.passports_read,
        f"store:{part.index}": stats.store_round_trips,
        f"redis:{part.index}": redis_trips + 1,
    }
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.hset(ledger, mapping={name: value for name, value in fields.items()})
    pipe.expire(ledger, ctx.settings.build_ttl_s)  # a long run keeps its ledger alive
    pipe.hgetall(ledger)
    recorded: dict[str, str] = pipe.execute()[-1]
    done = sum(1 for name in recorded if name.startswith("count:"))
    if done < int(recorded.get("parts", part.parts)):
        return None
    # Only the part that removes the ledger publishes, even if two saw every part done.
    if not ctx.redis.delete(ledger):
        return None
    return int(recorded["startedMs"]), _totals(recorded, part.parts)


def _totals(recorded: dict[str, str], parts: int) -> Totals:
    def total(prefix: str) -> int:
        return sum(int(value) for name, value in recorded.items() if name.startswith(prefix))

    return Totals(total("count:"), total("read:"), total("store:"), total("redis:"), parts)
