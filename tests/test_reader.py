"""Paging recipients: pages never exceed `count`, and a whole pass yields each exactly once."""

from __future__ import annotations

import random

import pytest
from bson import ObjectId

from worker.cache.reader import ResultChanged, read_page
from worker.cache.result import ResultBuilder
from worker.materialize.run import Context


def _publish(ctx: Context, audience_id: str, members: list[str], seq: int) -> None:
    builder = ResultBuilder(ctx.redis, ctx.settings.key_prefix, audience_id, f"r{seq}", 60)
    builder.add(members, ["0xowner"])
    meta = {"revision": 1, "evaluatedAt": "x", "countNFT": len(members), "countOwner": 1}
    assert builder.publish(meta, seq, 60)


def _pass(ctx: Context, audience_id: str, counts: list[int]) -> tuple[list[str], list[int]]:
    seen: list[str] = []
    sizes: list[int] = []
    cursor = "0"
    for step in range(10_000):
        count = counts[step % len(counts)]
        page = read_page(ctx.redis, ctx.settings.key_prefix, audience_id, cursor, count)
        assert page is not None
        assert len(page.recipients) <= count
        seen += page.recipients
        sizes.append(len(page.recipients))
        cursor = page.cursor
        if cursor == "0":
            return seen, sizes
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("size", [0, 1, 51, 2500])
def test_a_pass_with_changing_page_sizes_yields_each_member_once(ctx: Context, size: int) -> None:
    audience_id = str(ObjectId())
    members = [str(n) for n in range(size)]
    _publish(ctx, audience_id, members, 1)
    counts = [random.Random(size).randint(1, 700) for _ in range(7)]

    seen, sizes = _pass(ctx, audience_id, counts)

    assert sorted(seen, key=int) == members
    # Every page but the last is full: the page size is the caller's, not Redis's.
    assert all(size == counts[i % len(counts)] for i, size in enumerate(sizes[:-1]))


def test_a_switch_between_pages_is_reported_not_mixed(ctx: Context) -> None:
    audience_id = str(ObjectId())
    _publish(ctx, audience_id, [str(n) for n in range(100)], 1)
    first = read_page(ctx.redis, ctx.settings.key_prefix, audience_id, "0", 10)
    assert first is not None and first.cursor != "0"
    _publish(ctx, audience_id, ["a", "b"], 2)
    with pytest.raises(ResultChanged):
        read_page(ctx.redis, ctx.settings.key_prefix, audience_id, first.cursor, 10)


def test_no_meta_hash_is_a_cache_miss(ctx: Context) -> None:
    assert read_page(ctx.redis, ctx.settings.key_prefix, str(ObjectId()), "0", 10) is None
