"""The life of one materialization run, free of Celery: decide, claim, evaluate, publish.

Order of writes: the result is switched into Redis first, then written back to the document,
each guarded by the run's sequence number. The document therefore never announces a result
that Redis does not hold, and neither store ever takes an older run over a newer one.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from worker import instants, metrics
from worker.audience.rule import Rule
from worker.logs import event
from worker.materialize import partition
from worker.materialize.base import Claimed, Context, Outcome, Request
from worker.materialize.evaluate import ScanStats
from worker.materialize.publish import (
    Totals,
    builder_for,
    choose_order,
    collect,
    epoch_ms,
    finish,
)
from worker.settings import Settings
from worker.store import audiences

__all__ = ["Context", "Outcome", "Request", "give_up", "materialize"]

log = logging.getLogger(__name__)


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
    retry_at = epoch_ms() + _backoff_ms(ctx.settings, state.get("failures") or 0)
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
    return bool(finished > epoch_ms() - fresh_s * 1000)


def _settling(doc: dict[str, Any], settle_ms: int) -> bool:
    """Edited moments ago: more edits may follow, and each would supersede this run."""
    updated = instants.stored(doc.get("updatedAt"))
    if updated is None:
        return False
    return (datetime.now(UTC) - updated).total_seconds() * 1000 < settle_ms


def _claim(ctx: Context, audience_id: ObjectId, revision: int) -> Claimed | None:
    run_id = uuid.uuid4().hex
    lease_until = epoch_ms() + ctx.settings.lease_s * 1000
    doc = audiences.claim(ctx.stores.audiences, audience_id, revision, run_id, lease_until)
    if doc is None:
        return None
    seq = doc["materialization"]["claimSeq"]
    return Claimed(run_id, seq, revision, Rule.from_document(doc))


def _run(ctx: Context, request: Request, claimed: Claimed) -> Outcome:
    started_ms = epoch_ms()
    as_of = request.as_of or datetime.now(UTC)
    audience_id = request.audience_id
    event(
        log, "run.start", audience_id=str(audience_id), revision=claimed.revision, seq=claimed.seq
    )
    stats = ScanStats()
    order = choose_order(ctx, claimed.rule, as_of, stats)
    # Wallets first reads only the few admitted wallets' passports: never worth splitting.
    cuts = partition.plan(ctx, claimed.rule, stats) if order == "passports" else []
    if cuts:
        return partition.start(ctx, audience_id, claimed, as_of, cuts, stats)
    builder = builder_for(ctx, audience_id, claimed.run_id)
    try:
        count_nft = collect(ctx, claimed, as_of, builder, stats, order)
    except BaseException:
        builder.discard()
        raise
    totals = Totals(count_nft, stats.passports_read, stats.store_round_trips, builder.round_trips)
    return finish(ctx, audience_id, claimed, as_of, started_ms, totals)


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
