"""Readers of a result never see a partial, mixed or missing set while runs switch in."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from bson import ObjectId

from worker.cache.keys import AudienceKeys
from worker.cache.result import ResultBuilder
from worker.materialize.run import Context

SWAPS = 100
# Two alternating results of different sizes, so that any mix or partial set shows.
RESULTS = {
    "A": ([f"a{i}" for i in range(3000)], [f"0xa{i}" for i in range(700)]),
    "B": ([f"b{i}" for i in range(1200)], [f"0xb{i}" for i in range(300)]),
}


def _publish(ctx: Context, audience_id: str, seq: int, name: str) -> None:
    recipients, owners = RESULTS[name]
    builder = ResultBuilder(ctx.redis, ctx.settings.key_prefix, audience_id, f"run{seq}", 60)
    # Several writes per build, as a real run streams batches.
    for start in range(0, len(recipients), 500):
        builder.add(recipients[start : start + 500], owners[start : start + 500])
    meta = {"revision": 1, "evaluatedAt": "x", "countNFT": len(recipients)}
    assert builder.publish({**meta, "countOwner": len(owners)}, seq, 60)


def test_readers_see_one_whole_result_or_the_other_during_100_switches(
    ctx: Context, figure: Callable[[str], None]
) -> None:
    audience_id = str(ObjectId())
    keys = AudienceKeys.published(ctx.settings.key_prefix, audience_id)
    _publish(ctx, audience_id, 1, "A")
    seen: Counter[str] = Counter()
    done = threading.Event()

    def read() -> None:
        reader = ctx.redis.__class__(connection_pool=ctx.redis.connection_pool)
        while not done.is_set():
            pipe = reader.pipeline(transaction=True)
            pipe.scard(keys.recipients)
            pipe.scard(keys.owners)
            pipe.hget(keys.meta, "countNFT")
            pipe.sismember(keys.recipients, "a0")
            pipe.sismember(keys.recipients, "b0")
            seen[_classify(*pipe.execute())] += 1
            seen[_classify_alone(reader.scard(keys.recipients))] += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for seq in range(2, SWAPS + 2):
            _publish(ctx, audience_id, seq, "B" if seq % 2 == 0 else "A")
    finally:
        done.set()
        reader.join()

    figure(f"switch under readers: {SWAPS} switches, {sum(seen.values())} reads: {dict(seen)}")
    assert set(seen) <= {"A", "B"}
    assert seen["A"] > 0 and seen["B"] > 0


def _classify(recipients: int, owners: int, count: str | None, has_a: int, has_b: int) -> str:
    for name, (members, holders) in RESULTS.items():
        whole = (recipients, owners, count) == (len(members), len(holders), str(len(members)))
        if whole and (has_a, has_b) == ((1, 0) if name == "A" else (0, 1)):
            return name
    return f"bad:{recipients}/{owners}/{count}/{has_a}{has_b}"


def _classify_alone(recipients: int) -> str:
    sizes = {len(members): name for name, (members, _) in RESULTS.items()}
    return sizes.get(recipients, f"bad:{recipients}")
