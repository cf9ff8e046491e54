"""Which audiences a change of passports or wallets can affect.

These are deliberately generous: an audience is re-run whenever the change could have moved a
passport in or out of it. A changed passport may have gained or lost tags or its product, so
every audience of its brand is affected unless its rule is a token-id list the change misses.
A changed wallet matters only to audiences with an owner rule, in brands where it holds
passports.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from worker.audience.rule import Rule
from worker.materialize.run import Context

ID_AND_REVISION = {"_id": 1, "revision": 1, "tagRule": 1, "tokenIds": 1}
OWNER_RULE = {
    "brandId": 1,
    "revision": 1,
    "custodialWallet": 1,
    "countries": 1,
    "isWalletActiveSinceNumberOfDays": 1,
    "walletActivity": 1,
}


def after_passports(ctx: Context, brand_id: str, token_ids: list[str]) -> list[tuple[str, int]]:
    changed = set(token_ids)
    found = ctx.stores.audiences.find({"brandId": brand_id}, ID_AND_REVISION)
    return [
        (str(doc["_id"]), doc["revision"])
        for doc in found
        if doc.get("tagRule") != "tokenIds" or changed.intersection(doc.get("tokenIds") or [])
    ]


def after_wallets(ctx: Context, addresses: list[str]) -> list[tuple[str, int]]:
    brands = _brands_holding(ctx, addresses)
    if not brands:
        return []
    found = ctx.stores.audiences.find({"brandId": {"$in": sorted(brands)}}, OWNER_RULE)
    now = datetime.now(UTC)
    # An audience whose owner rule admits every wallet cannot be moved by a wallet change.
    return [
        (str(doc["_id"]), doc["revision"])
        for doc in found
        if not Rule.from_document(doc).owner_rule(now).is_open
    ]


def _brands_holding(ctx: Context, addresses: Iterable[str]) -> set[str]:
    ordered = sorted(set(addresses))
    brands: set[str] = set()
    size = ctx.settings.in_chunk_size
    for start in range(0, len(ordered), size):
        query: dict[str, Any] = {"owner": {"$in": ordered[start : start + size]}}
        brands.update(p["brandId"] for p in ctx.stores.passports.find(query, {"brandId": 1}))
    return brands
