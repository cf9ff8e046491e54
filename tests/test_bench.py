"""The benchmark keeps working at its smallest size (no timing is asserted)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from worker.bench import synthetic
from worker.bench.measure import audience_set, run_size, table
from worker.materialize.run import Context


def test_the_synthetic_brand_is_shaped_like_the_real_data() -> None:
    held = Counter(p["owner"] for batch in synthetic.passports(20_000) for p in batch)
    counts = sorted(held.values())
    singles = sum(1 for count in counts if count == 1)
    assert singles > len(counts) / 2  # most owners hold one passport
    assert counts[-1] >= 100  # a few hold hundreds


def test_a_small_run_measures_every_audience_against_its_floor(ctx: Context) -> None:
    rows = run_size(ctx, 2_000)

    assert [row.audience for row in rows] == [name for name, _ in audience_set(2_000)]
    assert all(row.seconds > 0 and row.floor_seconds > 0 for row in rows)
    assert all(row.store_round_trips >= 1 and row.redis_round_trips >= 1 for row in rows)
    by_name = {row.audience: row for row in rows}
    # 2,000 passports, 10,000 token ids asked at step 1: every passport is asked for once.
    assert by_name["10,000 tokenIds"].passports_read == 2_000
    markdown = table(rows, "test machine", datetime.now(UTC))
    assert markdown.count("\n| 2,000 |") == len(rows)
