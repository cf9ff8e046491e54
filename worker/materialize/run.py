"""The life of one materialization run, free of Celery: decide, claim, evaluate, publish.

Order of writes: the result is switched into Redis first, then written back to the document,
each guarded by the run's sequence number. The document therefore never announces a result
that Redis does not hold, and neither store ever takes an older run over a newer one.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from redis import Redis

from worker import instants, metrics
from worker.audience.rule import Rule
from worker.cache.result import ResultBuilder, drop
from worker.instants import iso
from worker.logs import event
from worker.materialize.evaluate import ScanLimits, ScanStats, matches
from worker.settings import Settings
from worker.store import audiences
from worker.store.mongo import Stores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What a run needs from outside: settings and live connections."""

    settings: Settings
    stores: Stores
    redis: Redis
    # Told the number of passports read so far, after each batch (the CLI's progress bar).
    on_progress: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Request:
    """A validated `audiences.materialize` message."""

    audience_id: ObjectId
    revision: int | None = None
    as_of: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of a request: `done`, or why nothing was done."""

    status: str
    revision: int | None = None
    count_nft: int | None = None
    count_owner: int | None = None
    recipients: int | None = None
    duration_ms: int | None = None
    passports_read: int = 0
    store_round_trips: int = 0
    redis_round_trips: int = 0


@dataclass
class Claimed:
    """A run that holds the audience: its id, order and the rule it evaluates."""

    run_id: str
    seq: int
    revision: int
    rule: Rule


def materialize(ctx: Context, request: Request) -> Outcome:
    """Evaluate one audience and publish the result, unless the request is moot."""
    doc = audiences.load(ctx.stores.audiences, request.audience_id)
    if doc is None:
        return Outcome("missing")
    skip = _reason_to_skip(ctx.settings, doc, request)
    if skip:
        return Outcome(skip, doc["revision"])
    claimed = _claim(ctx, request.audience_id, doc["revision"])
    if claimed is None:
        return Outcome("superseded")
    try:
        return _run(ctx, request, claimed)
    except BaseException as error:
        _note_failure(ctx, request.audience_id, claimed, error)
        raise


def give_up(ctx: Context, audience_id: ObjectId, error: BaseException) -> None:
    """After the last retry: the latest run is `failed`, the last good result stays, and a
    later try is scheduled with capped exponential backoff over the failures so far."""
    state = (audiences.load(ctx.stores.audiences, audience_id) or {}).get("materialization")
    if not state or state.get("claimSeq") is None:
        return
    retry_at = _epoch_ms() + _backoff_ms(ctx.settings, state.get("failures") or 0)
    audiences.record_failure(
        ctx.stores.audiences, audience_id, state["claimSeq"], _describe(error), retry_at
    )


def _backoff_ms(settings: Settings, failures: int) -> int:
    ceiling = min(settings.retry_max_s, settings.retry_base_s * 2 ** min(failures, 30))
    # Jitter within the upper half keeps many failed audiences from retrying in step.
    return int(ceiling * 1000 * random.uniform(0.5, 1.0))


def _reason_to_skip(settings: Settings, doc: dict[str, Any], request: Request) -> str:
    revision = doc["revision"]
    if request.revision is not None and request.revision < revision:
        return "superseded"
    if request.revision is not None and request.revision > revision:
        return "unknown_revision"
    if request.as_of is None and _fresh(doc, settings.fresh_s):
        return "fresh"
    if request.as_of is None and revision > 1 and _settling(doc, settings.settle_ms):
        return "settling"
    return ""


def _fresh(doc: dict[str, Any], fresh_s: int) -> bool:
    state = doc.get("materialization") or {}
    finished = state.get("finishedAtMs")
    if state.get("state") != "ready" or state.get("revision") != doc["revision"] or not finished:
        return False
    return bool(finished > _epoch_ms() - fresh_s * 1000)


def _settling(doc: dict[str, Any], settle_ms: int) -> bool:
    """Edited moments ago: more edits may follow, and each would supersede this run."""
    updated = instants.stored(doc.get("updatedAt"))
    if updated is None:
        return False
    return (datetime.now(UTC) - updated).total_seconds() * 1000 < settle_ms


def _epoch_ms() -> int:
    return int(time.time() * 1000)


def _claim(ctx: Context, audience_id: ObjectId, revision: int) -> Claimed | None:
    run_id = uuid.uuid4().hex
    lease_until = _epoch_ms() + ctx.settings.lease_s * 1000
    doc = audiences.claim(ctx.stores.audiences, audience_id, revision, run_id, lease_until)
    if doc is None:
        return None
    seq = doc["materialization"]["claimSeq"]
    return Claimed(run_id, seq, revision, Rule.from_document(doc))


def _run(ctx: Context, request: Request, claimed: Claimed) -> Outcome:
    started = time.monotonic()
    as_of = request.as_of or datetime.now(UTC)
    audience_id = str(request.audience_id)
    event(log, "run.start", audience_id=audience_id, revision=claimed.revision, seq=claimed.seq)
    builder = ResultBuilder(
        ctx.redis, ctx.settings.key_prefix, audience_id, claimed.run_id, ctx.settings.build_ttl_s
    )
    stats = ScanStats()
    try:
        count_nft, recipients = _collect(ctx, claimed.rule, as_of, builder, stats)
        count_owner = builder.owner_count()
        duration_ms = int((time.monotonic() - started) * 1000)
        result = {
            "revision": claimed.revision,
            "evaluatedAt": as_of,
            "countNFT": count_nft,
            "countOwner": count_owner,
            "durationMs": duration_ms,
            "finishedAtMs": _epoch_ms(),
        }
        meta = _meta(result, recipients)
        published = builder.publish(meta, claimed.seq, ctx.settings.cache_ttl_s)
    finally:
        builder.discard()
    status = _write_back(ctx, request.audience_id, claimed, result) if published else "outrun"
    metrics.record_run(ctx.redis, ctx.settings.key_prefix, status, duration_ms)
    event(
        log,
        "run.end",
        audience_id=audience_id,
        revision=claimed.revision,
        status=status,
        count_nft=count_nft,
        count_owner=count_owner,
        duration_ms=duration_ms,
        store_round_trips=stats.store_round_trips,
        redis_round_trips=builder.round_trips,
    )
    return Outcome(
        status,
        claimed.revision,
        count_nft,
        count_owner,
        recipients,
        duration_ms,
        stats.passports_read,
        stats.store_round_trips,
        builder.round_trips,
    )


def _collect(
    ctx: Context, rule: Rule, as_of: datetime, builder: ResultBuilder, stats: ScanStats
) -> tuple[int, int]:
    """Stream the members into the build keys; returns (countNFT, recipients)."""
    settings = ctx.settings
    limits = ScanLimits(settings.batch_size, settings.in_chunk_size, settings.owner_cache_size)
    count_nft = 0
    for batch in matches(ctx.stores, rule, as_of, limits, stats):
        if ctx.on_progress:
            ctx.on_progress(stats.passports_read)
        count_nft += len(batch)
        owners = {owner for _, owner in batch}
        if rule.unique_owner:
            builder.keep_first([(owner, token) for token, owner in batch])
            builder.add((), owners)
        else:
            builder.add((token for token, _ in batch), owners)
    if rule.unique_owner:
        return count_nft, builder.firsts_to_recipients()
    return count_nft, count_nft


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


def _note_failure(
    ctx: Context, audience_id: ObjectId, claimed: Claimed, error: BaseException
) -> None:
    try:
        metrics.record_failure(ctx.redis, ctx.settings.key_prefix)
        audiences.record_failure(ctx.stores.audiences, audience_id, claimed.seq, _describe(error))
    except Exception:
        # The store may be what failed; the retry policy decides what happens next.
        log.debug("run.failure_not_recorded", exc_info=True)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
