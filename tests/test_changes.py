"""Which audiences a passport or wallet change re-runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from worker.audience.fields import AudienceCreate
from worker.materialize.changes import after_passports, after_wallets
from worker.materialize.run import Context
from worker.store import audiences

ALICE = "0x" + "a" * 40


def _audience(ctx: Context, brand: str, **body: Any) -> str:
    fields = AudienceCreate.model_validate({"name": "n", **body}).stored()
    doc = audiences.new_document(brand, fields, datetime.now(UTC))
    return str(audiences.insert(ctx.stores.audiences, doc)["_id"])


def _ids(pairs: list[tuple[str, int]]) -> set[str]:
    return {audience_id for audience_id, _ in pairs}


def test_a_passport_change_reruns_its_brand_except_token_lists_it_misses(ctx: Context) -> None:
    by_tag = _audience(ctx, "b", tags="x")
    by_product = _audience(ctx, "b", tagRule="productIds", productIds="p")
    hit = _audience(ctx, "b", tagRule="tokenIds", tokenIds="7,8")
    _audience(ctx, "b", tagRule="tokenIds", tokenIds="9")
    _audience(ctx, "other", tags="x")

    assert _ids(after_passports(ctx, "b", ["8"])) == {by_tag, by_product, hit}


def test_a_wallet_change_reruns_owner_rules_where_the_wallet_holds_passports(
    ctx: Context,
) -> None:
    ctx.stores.passports.insert_one({"brandId": "b", "tokenId": "1", "owner": ALICE})
    custodial = _audience(ctx, "b", custodialWallet="yes")
    country = _audience(ctx, "b", countries="France")
    active = _audience(ctx, "b", isWalletActiveSinceNumberOfDays=30)
    _audience(ctx, "b", isWalletActiveSinceNumberOfDays=30, walletActivity="all")
    _audience(ctx, "b", tags="x")
    _audience(ctx, "other", custodialWallet="yes")

    assert _ids(after_wallets(ctx, [ALICE])) == {custodial, country, active}
    assert after_wallets(ctx, ["0x" + "f" * 40]) == []
