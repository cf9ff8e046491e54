"""Brands kept apart: customers who hold both brands' passports count only where they hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from worker.audience.fields import AudienceCreate
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences

SHARED = "0x" + "5" * 40  # a customer of both brands
ONLY_A = "0x" + "a" * 40
ONLY_B = "0x" + "b" * 40


def _run(ctx: Context, brand: str, **body: Any) -> tuple[int, int, set[str], set[str]]:
    fields = AudienceCreate.model_validate({"name": "n", **body}).stored()
    doc = audiences.insert(
        ctx.stores.audiences, audiences.new_document(brand, fields, datetime.now(UTC))
    )
    outcome = materialize(ctx, Request(ObjectId(doc["_id"]), as_of=datetime.now(UTC)))
    base = f"{ctx.settings.key_prefix}:{{{doc['_id']}}}"
    recipients = {str(m) for m in ctx.redis.smembers(f"{base}:recipients")}
    owners = {str(m) for m in ctx.redis.smembers(f"{base}:owners")}
    assert outcome.count_nft is not None and outcome.count_owner is not None
    return outcome.count_nft, outcome.count_owner, recipients, owners


def test_a_shared_wallet_counts_only_the_brands_own_passports(ctx: Context) -> None:
    # The same token ids and tags in both brands, and one wallet holding passports of each.
    ctx.stores.passports.insert_many(
        [
            {"brandId": "a", "tokenId": "1", "tags": ["vip"], "productId": "p", "owner": SHARED},
            {"brandId": "a", "tokenId": "2", "tags": ["vip"], "productId": "p", "owner": ONLY_A},
            {"brandId": "b", "tokenId": "1", "tags": ["vip"], "productId": "p", "owner": SHARED},
            {"brandId": "b", "tokenId": "3", "tags": ["vip"], "productId": "p", "owner": SHARED},
            {"brandId": "b", "tokenId": "4", "tags": ["vip"], "productId": "p", "owner": ONLY_B},
        ]
    )
    ctx.stores.wallets.insert_one(
        {"_id": SHARED, "custodial": True, "country": "France", "lastActiveAt": None}
    )

    # Worked by hand: brand a holds tokens 1 (shared wallet) and 2; brand b holds 1, 3, 4.
    assert _run(ctx, "a", tags="vip") == (2, 2, {"1", "2"}, {SHARED, ONLY_A})
    assert _run(ctx, "b", tags="vip") == (3, 2, {"1", "3", "4"}, {SHARED, ONLY_B})
    assert _run(ctx, "a", custodialWallet="yes") == (1, 1, {"1"}, {SHARED})
    assert _run(ctx, "b", custodialWallet="yes", uniqueOwner=True) == (2, 1, {"1"}, {SHARED})
    assert _run(ctx, "a", tagRule="tokenIds", tokenIds="3,4") == (0, 0, set(), set())
    assert _run(ctx, "b", tagRule="productIds", productIds="p")[:2] == (3, 2)
