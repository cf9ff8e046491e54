"""Which audiences are due: never materialized, lease expired, result stale, retry due.

A result is stale after `max_age_s`, or after `activity_refresh_s` when the audience has an
activity rule, whose members change with the clock alone.

Each due audience is stamped (`materialization.enqueuedAtMs`) by one conditional update
before it is enqueued, so two beat processes ticking at once never enqueue it twice, and an
audience already enqueued is left alone for `requeue_after_s`.
"""

from __future__ import annotations

import time
from typing import Any

from worker.materialize.run import Context
from worker.settings import Settings

M = "materialization"


def due(ctx: Context) -> list[tuple[str, int]]:
    """Stamp and return up to `refresh_batch` (audience id, revision) pairs to enqueue now."""
    now_ms = int(time.time() * 1000)
    settings = ctx.settings
    candidates = ctx.stores.audiences.find(
        _due_query(now_ms, settings),
        {"_id": 1, "revision": 1},
    ).limit(settings.refresh_batch)
    claimed = []
    for doc in list(candidates):
        query = _due_query(now_ms, settings, doc["_id"])
        stamp = {"$set": {f"{M}.enqueuedAtMs": now_ms}}
        if ctx.stores.audiences.update_one(query, stamp).modified_count:
            claimed.append((str(doc["_id"]), doc["revision"]))
    return claimed


def _due_query(now_ms: int, settings: Settings, one: Any = None) -> Any:
    # One `$and` of `$or`s: some MongoDB-speaking servers mishandle a top-level `$or` that
    # sits beside other fields in an update's filter.
    needs_run = {
        "$or": [
            {f"{M}.state": "pending"},
            {f"{M}.state": "running", f"{M}.leaseUntilMs": {"$lt": now_ms}},
            {
                f"{M}.state": "ready",
                f"{M}.finishedAtMs": {"$lt": now_ms - settings.max_age_s * 1000},
            },
            # Wallets age out of "active in the last N days" with no event to say so.
            {
                f"{M}.state": "ready",
                "isWalletActiveSinceNumberOfDays": {"$gte": 1},
                "walletActivity": {"$in": ["active", "inactive"]},
                f"{M}.finishedAtMs": {"$lt": now_ms - settings.activity_refresh_s * 1000},
            },
            {f"{M}.state": "failed", f"{M}.retryAtMs": {"$lt": now_ms}},
        ]
    }
    not_just_enqueued = {
        "$or": [
            {f"{M}.enqueuedAtMs": {"$exists": False}},
            {f"{M}.enqueuedAtMs": {"$lt": now_ms - settings.requeue_after_s * 1000}},
        ]
    }
    conditions = [needs_run, not_just_enqueued]
    if one is not None:
        conditions.insert(0, {"_id": one})
    return {"$and": conditions}
