"""Run order: superseded messages, fresh results, and older runs that finish late."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pymongo.errors
import pytest
from bson import ObjectId

from worker.audience.fields import AudienceCreate
from worker.cache.keys import AudienceKeys
from worker.cache.result import ResultBuilder
from worker.materialize.publish import Lease
from worker.materialize.run import Context, Request, give_up, materialize
from worker.store import audiences

AS_OF = datetime(2022, 10, 20, tzinfo=UTC)
OWNER_A = "0x" + "a" * 40
OWNER_B = "0x" + "b" * 40


def _audience(ctx: Context, **body: Any) -> dict[str, Any]:
    fields = AudienceCreate.model_validate({"name": "n", **body}).stored()
    doc = audiences.new_document("brand-a", fields, datetime.now(UTC))
    return audiences.insert(ctx.stores.audiences, doc)


def _passports(ctx: Context) -> None:
    ctx.stores.passports.insert_many(
        [
            {"brandId": "brand-a", "tokenId": "1", "tags": ["x"], "owner": OWNER_A},
            {"brandId": "brand-a", "tokenId": "2", "tags": ["y"], "owner": OWNER_B},
        ]
    )


def _keys(ctx: Context, doc: dict[str, Any]) -> AudienceKeys:
    return AudienceKeys.published(ctx.settings.key_prefix, str(doc["_id"]))


def _reload(ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
    found = audiences.load(ctx.stores.audiences, doc["_id"])
    assert found is not None
    return found


def test_a_message_for_an_older_revision_is_dropped(ctx: Context) -> None:
    _passports(ctx)
    doc = _audience(ctx, tags="x")
    audiences.patch(ctx.stores.audiences, "brand-a", doc["_id"], {"tags": ["y"]}, AS_OF)

    outcome = materialize(ctx, Request(doc["_id"], revision=1, as_of=AS_OF))

    assert outcome.status == "superseded"
    stored = _reload(ctx, doc)
    assert "claimSeq" not in stored["materialization"]
    assert stored["countNFT"] is None
    assert not ctx.redis.exists(_keys(ctx, doc).meta)


def test_a_fresh_result_skips_a_plain_message_but_not_one_with_as_of(ctx: Context) -> None:
    _passports(ctx)
    doc = _audience(ctx, tags="x")
    assert materialize(ctx, Request(doc["_id"])).status == "done"

    assert materialize(ctx, Request(doc["_id"])).status == "fresh"
    assert materialize(ctx, Request(doc["_id"], as_of=AS_OF)).status == "done"
    assert _reload(ctx, doc)["materialization"]["claimSeq"] == 2


def test_unknown_audience_is_reported_missing(ctx: Context) -> None:
    assert materialize(ctx, Request(ObjectId())).status == "missing"


def test_an_older_run_never_replaces_a_newer_result_in_redis(ctx: Context) -> None:
    doc = _audience(ctx)
    audience_id = str(doc["_id"])
    prefix, ttl = ctx.settings.key_prefix, ctx.settings.build_ttl_s
    newer = ResultBuilder(ctx.redis, prefix, audience_id, "run-new", ttl)
    older = ResultBuilder(ctx.redis, prefix, audience_id, "run-old", ttl)
    newer.add(["2"], [OWNER_B])
    older.add(["1"], [OWNER_A])
    meta = {"revision": 1, "evaluatedAt": "2022-10-20T00:00:00.000Z"}

    assert newer.publish({**meta, "countNFT": 1, "countOwner": 1}, seq=2, ttl_s=60)
    assert not older.publish({**meta, "countNFT": 1, "countOwner": 1}, seq=1, ttl_s=60)

    keys = _keys(ctx, doc)
    assert ctx.redis.smembers(keys.recipients) == {"2"}
    assert ctx.redis.smembers(keys.owners) == {OWNER_B}
    assert ctx.redis.hget(keys.meta, "seq") == "2"
    assert not any(ctx.redis.exists(key) for key in older.build.all())


def test_an_older_run_never_overwrites_a_newer_result_on_the_document(ctx: Context) -> None:
    doc = _audience(ctx)
    for _ in range(2):
        audiences.claim(ctx.stores.audiences, doc["_id"], 1, "run", 0)
    result = {
        "revision": 1,
        "evaluatedAt": AS_OF,
        "durationMs": 5,
        "finishedAtMs": 1,
    }
    assert audiences.record_result(
        ctx.stores.audiences, doc["_id"], 2, {**result, "countNFT": 2, "countOwner": 2}
    )
    assert not audiences.record_result(
        ctx.stores.audiences, doc["_id"], 1, {**result, "countNFT": 1, "countOwner": 1}
    )
    stored = _reload(ctx, doc)
    assert (stored["countNFT"], stored["countOwner"]) == (2, 2)
    assert stored["materialization"]["state"] == "ready"
    assert stored["name"] == "n"


def test_a_result_for_a_revision_that_moved_on_leaves_the_state_pending(ctx: Context) -> None:
    _passports(ctx)
    doc = _audience(ctx, tags="x")
    audiences.claim(ctx.stores.audiences, doc["_id"], 1, "run", 0)
    audiences.patch(ctx.stores.audiences, "brand-a", doc["_id"], {"tags": ["y"]}, AS_OF)
    result = {"revision": 1, "evaluatedAt": AS_OF, "durationMs": 5, "finishedAtMs": 1}

    assert audiences.record_result(
        ctx.stores.audiences, doc["_id"], 1, {**result, "countNFT": 1, "countOwner": 1}
    )

    stored = _reload(ctx, doc)
    assert stored["revision"] == 2
    assert stored["materialization"]["state"] == "pending"
    assert stored["materialization"]["revision"] == 1
    assert stored["countNFT"] == 1


@pytest.mark.parametrize("name", ["Brand A Campaign"])
def test_a_name_change_keeps_the_revision_and_the_result(ctx: Context, name: str) -> None:
    _passports(ctx)
    doc = _audience(ctx, tags="x")
    materialize(ctx, Request(doc["_id"], as_of=AS_OF))
    updated, moved = audiences.patch(
        ctx.stores.audiences, "brand-a", doc["_id"], {"name": name}, AS_OF
    )
    assert not moved
    assert updated["revision"] == 1
    assert updated["materialization"]["state"] == "ready"
    assert updated["countNFT"] == 1


def test_a_plain_message_waits_while_edits_settle(ctx: Context) -> None:
    _passports(ctx)
    doc = _audience(ctx, tags="x")
    now = datetime.now(UTC)
    audiences.patch(ctx.stores.audiences, "brand-a", doc["_id"], {"tags": ["y"]}, now)

    waiting = materialize(ctx, Request(doc["_id"], revision=2))
    assert (waiting.status, waiting.revision) == ("settling", 2)
    assert materialize(ctx, Request(doc["_id"], revision=2, as_of=AS_OF)).status == "done"

    settled = Context(ctx.settings.model_copy(update={"settle_ms": 0}), ctx.stores, ctx.redis)
    audiences.patch(ctx.stores.audiences, "brand-a", doc["_id"], {"tags": ["x"]}, now)
    assert materialize(settled, Request(doc["_id"], revision=3)).status == "done"


def test_a_failing_run_keeps_the_last_good_result_and_ends_failed(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    _passports(ctx)
    doc = _audience(ctx, tags="x")
    assert materialize(ctx, Request(doc["_id"], as_of=AS_OF)).status == "done"
    keys = _keys(ctx, doc)

    def unreachable(*_: Any, **__: Any) -> Any:
        raise pymongo.errors.AutoReconnect("store unreachable")

    monkeypatch.setattr("worker.store.passports.scan", unreachable)
    for attempt in (1, 2):
        with pytest.raises(pymongo.errors.AutoReconnect):
            materialize(ctx, Request(doc["_id"], as_of=AS_OF))
        state = _reload(ctx, doc)["materialization"]
        assert (state["state"], state["failures"]) == ("running", attempt)
        assert "store unreachable" in state["error"]

    before_ms = int(time.time() * 1000)
    give_up(ctx, doc["_id"], pymongo.errors.AutoReconnect("store unreachable"))

    stored = _reload(ctx, doc)
    assert stored["materialization"]["state"] == "failed"
    # Two failures so far: the next try waits 30 s x 2^2 = 120 s, jittered into its upper half.
    wait_ms = stored["materialization"]["retryAtMs"] - before_ms
    assert 60_000 <= wait_ms <= 121_000
    assert "AutoReconnect: store unreachable" in stored["materialization"]["error"]
    assert (stored["countNFT"], stored["countOwner"]) == (1, 1)
    assert ctx.redis.smembers(keys.recipients) == {"1"}
    # Nothing of the failed runs is left in Redis but the published result, the figures of
    # the last good run, and the totals.
    prefix = ctx.settings.key_prefix
    left = set(ctx.redis.scan_iter(f"{prefix}:*")) - {f"{prefix}:metrics"}
    assert left == {*keys.all(), AudienceKeys.last_run(prefix, str(doc["_id"]))}


def test_a_long_run_renews_its_lease_and_a_taken_one_does_not(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _audience(ctx, tags="x")
    claimed = audiences.claim(ctx.stores.audiences, doc["_id"], 1, "run-1", lease_until_ms=0)
    assert claimed is not None
    clock = [1000.0]
    monkeypatch.setattr("worker.materialize.publish.time.monotonic", lambda: clock[0])
    lease = Lease(ctx, str(doc["_id"]), "run-1")

    lease.keep()  # no time has passed: nothing to renew
    assert _reload(ctx, doc)["materialization"]["leaseUntilMs"] == 0
    clock[0] += ctx.settings.lease_s / 3  # a third of the lease has gone by
    before_ms = int(time.time() * 1000)
    lease.keep()
    renewed = _reload(ctx, doc)["materialization"]["leaseUntilMs"]
    assert renewed >= before_ms + ctx.settings.lease_s * 1000

    audiences.claim(ctx.stores.audiences, doc["_id"], 1, "run-2", lease_until_ms=5)
    clock[0] += ctx.settings.lease_s
    lease.keep()  # run-1 no longer holds the audience: run-2's lease stands
    assert _reload(ctx, doc)["materialization"]["leaseUntilMs"] == 5
