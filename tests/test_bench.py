"""The benchmark keeps working at its smallest size (no timing is asserted)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from worker.bench import runner, synthetic
from worker.bench.measure import audience_set


def test_the_synthetic_brand_is_shaped_like_the_real_data() -> None:
    held = Counter(p["owner"] for batch in synthetic.passports(20_000) for p in batch)
    counts = sorted(held.values())
    singles = sum(1 for count in counts if count == 1)
    assert singles > len(counts) / 2  # most owners hold one passport
    assert counts[-1] >= 100  # a few hold hundreds


@pytest.mark.e2e
def test_a_small_run_measures_every_audience_by_real_workers(tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    # Parts of 1,000: the full scans of 4,000 passports are split into four tasks.
    rows, orders, splits = runner.run([4_000], out, workers=2, partition_size=1000)

    assert [row.audience for row in rows] == [name for name, _ in audience_set(4_000)]
    assert all(row.seconds > 0 and row.floor_seconds > 0 for row in rows)
    assert all(row.store_round_trips >= 1 and row.redis_round_trips >= 1 for row in rows)
    by_name = {row.audience: row for row in rows}
    # 4,000 passports, 10,000 token ids asked at step 1: every passport is asked for once.
    assert by_name["10,000 tokenIds"].passports_read == 4_000
    assert by_name["10,000 tokenIds"].parts == 1  # token id lists are never split
    assert by_name["uniqueOwner"].parts == 4
    assert by_name["uniqueOwner"].passports_read == 4_000
    # Every owner of the generated brand holds at least one passport: one recipient each.
    owners = {p["owner"] for batch in synthetic.passports(4_000) for p in batch}
    assert by_name["uniqueOwner"].recipients == len(owners)
    assert [s.workers for s in splits] == [1, 2]
    assert all(s.parts == 4 and len(s.worker_cpu_s) == s.workers for s in splits)
    # Either order finds the same members; the selective rule is read wallets first.
    assert all(order.agree for order in orders)
    assert [(o.audience, o.picked) for o in orders] == [
        ("selective owners", "wallets"),
        ("custodial owners", "wallets"),
    ]
    markdown = out.read_text()
    assert markdown.count("\n| 4,000 |") == len(rows) + len(orders) + len(splits)
