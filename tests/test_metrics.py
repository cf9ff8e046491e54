"""The Prometheus metrics, read the way Prometheus reads them."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.audience.fields import AudienceCreate
from worker.materialize.run import Context, Request, materialize
from worker.metrics import AudienceCollector
from worker.store import audiences


def _scrape(ctx: Context) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    broker = redis.Redis.from_url(ctx.settings.require_redis_url(), decode_responses=True)
    registry.register(AudienceCollector(ctx, broker))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_states_runs_and_durations_are_exposed(ctx: Context) -> None:
    ctx.stores.passports.insert_one({"brandId": "b", "tokenId": "1", "owner": "0x" + "1" * 40})
    for n in range(3):
        fields = AudienceCreate.model_validate({"name": f"m{n}"}).stored()
        doc = audiences.insert(
            ctx.stores.audiences, audiences.new_document("b", fields, datetime.now(UTC))
        )
    materialize(ctx, Request(doc["_id"], as_of=datetime.now(UTC)))
    queue = f"{ctx.settings.key_prefix}-queue"
    ctx = Context(ctx.settings.model_copy(update={"queue": queue}), ctx.stores, ctx.redis)
    ctx.redis.rpush(queue, "a", "b")
    try:
        seen = _scrape(ctx)
    finally:
        ctx.redis.delete(queue)

    assert seen[("audience_worker_audiences", (("state", "pending"),))] == 2
    assert seen[("audience_worker_audiences", (("state", "ready"),))] == 1
    assert seen[("audience_worker_queue_backlog", ())] == 2
    assert seen[("audience_worker_runs_total", (("status", "done"),))] == 1
    assert seen[("audience_worker_run_duration_seconds_count", ())] == 1
    assert seen[("audience_worker_run_failures_total", ())] == 0
    assert 0 <= seen[("audience_worker_oldest_result_age_seconds", ())] < 60
