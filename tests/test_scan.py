"""Scans walk owners in order, in bounded batches, and finish an owner a batch cut short."""

from __future__ import annotations

from worker.materialize.run import Context
from worker.store import wallets
from worker.store.passports import scan, size_estimate

A, B, C = ("0x" + ch * 40 for ch in "abc")
HELD = {A: 7, B: 1, C: 5}  # passports per owner


def _load(ctx: Context) -> None:
    docs = [
        {"brandId": "b", "tokenId": f"{owner[2]}{n}", "owner": owner, "tags": []}
        for owner, count in HELD.items()
        for n in range(count)
    ]
    burned = {"brandId": "b", "tokenId": "z0", "owner": "0x" + "0" * 40, "tags": []}
    other_brand = {"brandId": "other", "tokenId": "a0", "owner": A, "tags": []}
    ctx.stores.passports.insert_many([*docs, burned, other_brand])


def test_every_passport_comes_once_in_owner_order_in_batches_of_at_most_three(
    ctx: Context,
) -> None:
    _load(ctx)
    batches = list(scan(ctx.stores.passports, {"brandId": {"$eq": "b"}}, 3))
    pairs = [(p["owner"], p["tokenId"]) for batch in batches for p in batch]
    # 13 passports with a real owner; the burned one and the other brand's are left out.
    assert sorted(pairs) == pairs and len(pairs) == len(set(pairs)) == 13
    # One batch per request, empty answers too: a0-a2; the rest of A (a3-a5, a6); b0, c0,
    # c1; the rest of C (c2-c4, then nothing); then nothing past C.
    assert [len(batch) for batch in batches] == [3, 3, 1, 3, 3, 0, 0]


def test_an_owner_range_holds_exactly_its_owners(ctx: Context) -> None:
    _load(ctx)
    query = {"brandId": {"$eq": "b"}}
    middle = [p["owner"] for batch in scan(ctx.stores.passports, query, 2, A, B) for p in batch]
    assert middle == [B]
    tail = {p["owner"] for batch in scan(ctx.stores.passports, query, 2, B) for p in batch}
    assert tail == {C}
    head = [p for batch in scan(ctx.stores.passports, query, 2, None, A) for p in batch]
    assert len(head) == HELD[A]


def test_a_brand_size_is_estimated_within_a_factor_of_two(ctx: Context) -> None:
    docs = [{"brandId": "big", "tokenId": str(n), "owner": A} for n in range(3000)]
    ctx.stores.passports.insert_many(docs)
    # Probes skip to 64, 128, ... 2,048 (6, all found) and 4,096 (not): 3,000 rounds up to
    # 4,096, in 7 requests.
    assert size_estimate(ctx.stores.passports, "big", 1 << 30) == (4096, 7)
    # The cap: 64 to 1,024 found (5 requests), and 2,048 is not asked.
    assert size_estimate(ctx.stores.passports, "big", 2048) == (2048, 5)
    assert size_estimate(ctx.stores.passports, "none", 1 << 30) == (64, 1)


def test_admitted_wallets_come_once_each_in_pages_in_address_order(ctx: Context) -> None:
    ctx.stores.wallets.insert_many(
        {"_id": f"0x{n:040x}", "custodial": n % 2 == 0, "country": "Japan"} for n in range(9)
    )
    pages = list(wallets.matching(ctx.stores.wallets, {"custodial": {"$eq": True}}, 2))
    # Custodial: 0, 2, 4, 6 and 8; pages of two, each starting after the last one's end.
    assert [[w["_id"] for w in page] for page in pages] == [
        [f"0x{0:040x}", f"0x{2:040x}"],
        [f"0x{4:040x}", f"0x{6:040x}"],
        [f"0x{8:040x}"],
    ]
