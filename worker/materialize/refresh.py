"""Which audiences are due for a run: never materialized, expired lease, or stale result."""

from __future__ import annotations

import time

from worker.materialize.run import Context


def due(ctx: Context) -> list[tuple[str, int]]:
    """Up to `refresh_batch` (audience id, revision) pairs that need a run now."""
    now_ms = int(time.time() * 1000)
    stale_before_ms = now_ms - ctx.settings.max_age_s * 1000
    query = {
        "$or": [
            {"materialization.state": "pending"},
            {"materialization.state": "running", "materialization.leaseUntilMs": {"$lt": now_ms}},
            {
                "materialization.state": "ready",
                "materialization.finishedAtMs": {"$lt": stale_before_ms},
            },
        ]
    }
    cursor = ctx.stores.audiences.find(query, {"_id": 1, "revision": 1})
    return [(str(d["_id"]), d["revision"]) for d in cursor.limit(ctx.settings.refresh_batch)]
