"""Which audiences `audiences.refresh_due` enqueues, and that it enqueues each once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from worker.audience.fields import AudienceCreate
from worker.materialize.refresh import due
from worker.materialize.run import Context
from worker.store import audiences

HOUR_MS = 3600 * 1000


def _audience(ctx: Context, materialization: dict[str, Any], **body: Any) -> str:
    fields = AudienceCreate.model_validate({"name": "n", **body}).stored()
    doc = audiences.new_document("brand-a", fields, datetime.now(UTC))
    # As if the first message was sent long ago and is lost.
    doc["materialization"].update({"enqueuedAtMs": 0, **materialization})
    audiences.insert(ctx.stores.audiences, doc)
    return str(doc["_id"])


def _ids(pairs: list[tuple[str, int]]) -> set[str]:
    return {audience_id for audience_id, _ in pairs}


def test_due_audiences_are_the_unfinished_stuck_and_stale_ones(ctx: Context) -> None:
    now_ms = int(time.time() * 1000)
    never = _audience(ctx, {})
    stuck = _audience(ctx, {"state": "running", "leaseUntilMs": now_ms - 1})
    _audience(ctx, {"state": "running", "leaseUntilMs": now_ms + HOUR_MS})
    _audience(ctx, {"state": "ready", "finishedAtMs": now_ms - HOUR_MS})
    stale = _audience(ctx, {"state": "ready", "finishedAtMs": now_ms - 25 * HOUR_MS})
    _audience(ctx, {"enqueuedAtMs": now_ms - 1000})
    retry = _audience(ctx, {"state": "failed", "retryAtMs": now_ms - 1})
    two_hours = {"state": "ready", "finishedAtMs": now_ms - 2 * HOUR_MS}
    aged_out = _audience(ctx, two_hours, isWalletActiveSinceNumberOfDays=30)
    _audience(ctx, two_hours, isWalletActiveSinceNumberOfDays=30, walletActivity="all")
    _audience(ctx, two_hours, isWalletActiveSinceNumberOfDays=0)
    _audience(ctx, {"state": "failed", "retryAtMs": now_ms + HOUR_MS})

    assert _ids(due(ctx)) == {never, stuck, stale, retry, aged_out}
    # Stamped as enqueued: the next tick leaves them alone.
    assert due(ctx) == []


def test_a_new_audience_is_left_to_the_message_the_api_sent(ctx: Context) -> None:
    fields = AudienceCreate.model_validate({"name": "n"}).stored()
    audiences.insert(ctx.stores.audiences, audiences.new_document("b", fields, datetime.now(UTC)))
    assert due(ctx) == []


def test_a_tick_enqueues_at_most_the_configured_batch(ctx: Context) -> None:
    for _ in range(5):
        _audience(ctx, {})
    small = Context(ctx.settings.model_copy(update={"refresh_batch": 3}), ctx.stores, ctx.redis)
    assert len(due(small)) == 3
    assert len(due(small)) == 2


def test_two_beats_ticking_at_once_enqueue_each_audience_once(
    ctx: Context, figure: Callable[[str], None]
) -> None:
    expected = {_audience(ctx, {}) for _ in range(40)}
    results: list[list[tuple[str, int]]] = [[], []]

    def tick(slot: int) -> None:
        results[slot] = due(ctx)

    beats = [threading.Thread(target=tick, args=(slot,)) for slot in (0, 1)]
    for beat in beats:
        beat.start()
    for beat in beats:
        beat.join()

    enqueued = results[0] + results[1]
    figure(f"two beats: {len(results[0])} + {len(results[1])} enqueued of {len(expected)} due")
    assert len(enqueued) == len(expected)
    assert _ids(enqueued) == expected
