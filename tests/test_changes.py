"""Which audiences a passport or wallet change re-runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from worker.audience.fields import AudienceCreate
from worker.materialize.changes import after_passports, after_wallets
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences

ALICE = "0x" + "a" * 40


def _audience(ctx: Context, brand: str, **body: Any) -> str:
    fields = AudienceCreate.model_validate({"name": "n", **body}).stored()
    doc = audiences.new_document(brand, fields, datetime.now(UTC))
    return str(audiences.insert(ctx.stores.audiences, doc)["_id"])


def _ids(pairs: list[tuple[str, int]]) -> set[str]:
    return {audience_id for audience_id, _ in pairs}


def _ready(ctx: Context, brand: str, **body: Any) -> str:
    audience_id = _audience(ctx, brand, **body)
    request = Request(ObjectId(audience_id), as_of=datetime.now(UTC))
    assert materialize(ctx, request).status == "done"
    return audience_id


def test_a_passport_change_reruns_the_audiences_it_enters_or_leaves(ctx: Context) -> None:
    bob = "0x" + "b" * 40
    ctx.stores.passports.insert_many(
        [
            {"brandId": "b", "tokenId": "8", "tags": ["y"], "productId": "p", "owner": ALICE},
            {"brandId": "b", "tokenId": "9", "tags": ["z"], "productId": "q", "owner": bob},
        ]
    )
    left = _ready(ctx, "b", tags="y")  # 8 was a member, and is about to leave
    entered = _ready(ctx, "b", tags="x")  # 8 is about to enter
    untouched = _ready(ctx, "b", tags="z")
    by_product = _ready(ctx, "b", tagRule="productIds", productIds="p")
    _ready(ctx, "b", tagRule="productIds", productIds="q")
    by_token = _audience(ctx, "b", tagRule="tokenIds", tokenIds="7,8")
    _audience(ctx, "b", tagRule="tokenIds", tokenIds="9")
    never_run = _audience(ctx, "b", tags="w")
    _audience(ctx, "other", tags="x")
    ctx.stores.passports.update_one({"tokenId": "8"}, {"$set": {"tags": ["x"]}})

    found = _ids(after_passports(ctx, "b", ["8"]))

    assert found == {left, entered, by_product, by_token, never_run}
    assert untouched not in found


def test_a_wallet_change_reruns_the_audiences_it_enters_or_leaves(ctx: Context) -> None:
    ctx.stores.passports.insert_one({"brandId": "b", "tokenId": "1", "tags": ["y"], "owner": ALICE})
    profile = {"_id": ALICE, "custodial": False, "country": "France", "lastActiveAt": None}
    ctx.stores.wallets.insert_one(profile)
    leaves = _ready(ctx, "b", custodialWallet="no")  # Alice is in it, and is about to leave
    enters = _ready(ctx, "b", custodialWallet="yes")  # Alice is about to enter it
    _ready(ctx, "b", countries="Spain")  # Alice was never in it and will not be
    _ready(ctx, "b", custodialWallet="yes", tags="x")  # her passport lacks tag x
    _ready(ctx, "b", isWalletActiveSinceNumberOfDays=30, walletActivity="all")  # open rule
    _ready(ctx, "other", custodialWallet="yes")  # she holds nothing of this brand
    # Replaced whole: the embedded store turns a boolean written by `$set` into 1.
    ctx.stores.wallets.replace_one({"_id": ALICE}, {**profile, "custodial": True})

    assert _ids(after_wallets(ctx, [ALICE])) == {leaves, enters}
    assert after_wallets(ctx, ["0x" + "f" * 40]) == []
