"""Which audiences `audiences.refresh_due` enqueues."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from worker.audience.fields import AudienceCreate
from worker.materialize.refresh import due
from worker.materialize.run import Context
from worker.store import audiences


def _audience(ctx: Context, materialization: dict[str, Any]) -> str:
    fields = AudienceCreate.model_validate({"name": "n"}).stored()
    doc = audiences.new_document("brand-a", fields, datetime.now(UTC))
    doc["materialization"].update(materialization)
    audiences.insert(ctx.stores.audiences, doc)
    return str(doc["_id"])


def test_due_audiences_are_the_unfinished_stuck_and_stale_ones(ctx: Context) -> None:
    now_ms = int(time.time() * 1000)
    hour_ms = 3600 * 1000
    never = _audience(ctx, {})
    stuck = _audience(ctx, {"state": "running", "leaseUntilMs": now_ms - 1})
    _audience(ctx, {"state": "running", "leaseUntilMs": now_ms + hour_ms})
    _audience(ctx, {"state": "ready", "finishedAtMs": now_ms - hour_ms})
    stale = _audience(ctx, {"state": "ready", "finishedAtMs": now_ms - 25 * hour_ms})

    assert {audience_id for audience_id, _ in due(ctx)} == {never, stuck, stale}


def test_a_tick_enqueues_at_most_the_configured_batch(ctx: Context) -> None:
    for _ in range(5):
        _audience(ctx, {})
    small = Context(ctx.settings.model_copy(update={"refresh_batch": 3}), ctx.stores, ctx.redis)
    assert len(due(small)) == 3
