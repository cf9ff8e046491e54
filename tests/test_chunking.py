"""Long id lists are split so that no `$in` list exceeds the chunk size, with equal results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.audience.fields import AudienceCreate
from worker.audience.rule import Rule
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences

AS_OF = datetime(2022, 10, 20, tzinfo=UTC)


def _rule(**fields: Any) -> Rule:
    return Rule.from_document({"brandId": "b", **fields})


def test_product_ids_are_split_into_disjoint_chunks() -> None:
    ids = [f"p{i:04d}" for i in range(2500)]
    filters = list(_rule(tagRule="productIds", productIds=ids).passport_filters(1000))
    sizes = [len(f["productId"]["$in"]) for f in filters]
    assert sizes == [1000, 1000, 500]
    chunks = [set(f["productId"]["$in"]) for f in filters]
    assert set().union(*chunks) == set(ids)
    assert sum(map(len, chunks)) == len(ids)


def test_a_tag_list_longer_than_a_chunk_is_left_to_the_worker() -> None:
    many = [f"t{i}" for i in range(11)]
    assert list(_rule(tags=many).passport_filters(10)) == [{"brandId": {"$eq": "b"}}]
    assert next(iter(_rule(tags=many[:3]).passport_filters(10)))["tags"] == {"$in": many[:3]}


def _materialize(ctx: Context, body: dict[str, Any]) -> tuple[int, int, set[str]]:
    doc = audiences.new_document(
        "b", AudienceCreate.model_validate({"name": "n", **body}).stored(), AS_OF
    )
    audiences.insert(ctx.stores.audiences, doc)
    outcome = materialize(ctx, Request(doc["_id"], as_of=AS_OF))
    key = f"{ctx.settings.key_prefix}:{{{doc['_id']}}}:recipients"
    assert outcome.count_nft is not None and outcome.count_owner is not None
    return outcome.count_nft, outcome.count_owner, ctx.redis.smembers(key)


def test_chunked_and_unchunked_evaluations_agree(ctx: Context) -> None:
    # 30 passports: product p<i mod 7>, tags t<i mod 5>; owners cycle over 4 wallets.
    ctx.stores.passports.insert_many(
        {
            "brandId": "b",
            "tokenId": str(i),
            "productId": f"p{i % 7}",
            "tags": [f"t{i % 5}"],
            "owner": "0x" + str(i % 4) * 40,
        }
        for i in range(30)
    )
    bodies = [
        {"tagRule": "productIds", "productIds": ["p0", "p1", "p2", "p3", "p9"]},
        {"tagRule": "or", "tags": ["t0", "t1", "t2", "t9"]},
        {"tagRule": "tokenIds", "tokenIds": [str(i) for i in range(0, 40, 3)]},
        {"custodialWallet": "yes", "uniqueOwner": True},
        {"countries": "France", "tags": ["t1", "t2"], "tagRule": "any"},
    ]
    ctx.stores.wallets.insert_many(
        {"_id": "0x" + str(n) * 40, "custodial": n % 2 == 1, "country": "France"} for n in (1, 2, 3)
    )
    update = {"in_chunk_size": 2, "batch_size": 4}
    small = Context(ctx.settings.model_copy(update=update), ctx.stores, ctx.redis)
    for body in bodies:
        assert _materialize(small, body) == _materialize(ctx, body)
    # p0..p3 are the i with i mod 7 in {0..3}: 5 + 5 + 4 + 4 = 18 passports. Those with
    # i mod 4 == 0 (0, 8, 16, 24, 28) belong to the zero address, burned: 18 - 5 = 13.
    assert _materialize(small, bodies[0])[0] == 13
    # Custodial owners are 0x1.. and 0x3..: their first tokens by number are 1 and 3.
    assert _materialize(small, bodies[3])[2] == {"1", "3"}
