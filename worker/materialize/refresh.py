"""Which audiences are due for a run: never materialized, expired lease, or stale result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.materialize.run import Context


def due(ctx: Context) -> list[tuple[str, int]]:
    """Up to `refresh_batch` (audience id, revision) pairs that need a run now."""
    now = datetime.now(UTC)
    stale_before = now - timedelta(seconds=ctx.settings.max_age_s)
    query = {
        "$or": [
            {"materialization.state": "pending"},
            {"materialization.state": "running", "materialization.leaseUntil": {"$lt": now}},
            {
                "materialization.state": "ready",
                "materialization.evaluatedAt": {"$lt": stale_before},
            },
        ]
    }
    cursor = ctx.stores.audiences.find(query, {"_id": 1, "revision": 1})
    return [(str(d["_id"]), d["revision"]) for d in cursor.limit(ctx.settings.refresh_batch)]
