"""Which audiences a change of passports or wallets can affect.

A change event says which passports or wallets changed, not how. A passport can move into an
audience (it matches the passport rule now) or out of it (it was a member: its tokenId is in
the cached recipients, or its owner in the cached owners). An audience with no cached result
is always affected. A changed wallet matters only to audiences with an owner rule, in brands
where it holds passports. Where it cannot be told, the answer errs towards a re-run.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from worker.audience.rule import Rule, real_owner
from worker.cache.keys import AudienceKeys
from worker.materialize.run import Context
from worker.store import wallets

PASSPORT_FIELDS = {"_id": 0, "tokenId": 1, "tags": 1, "productId": 1, "owner": 1}


def after_passports(ctx: Context, brand_id: str, token_ids: list[str]) -> list[tuple[str, int]]:
    changed = sorted(set(token_ids))
    if not changed:
        return []
    now = _current_passports(ctx, brand_id, changed)
    owners = sorted({owner for p in now if (owner := real_owner(p.get("owner")))})
    affected = []
    for doc in ctx.stores.audiences.find({"brandId": brand_id}):
        rule = Rule.from_document(doc)
        if rule.tag_rule == "tokenIds":
            hit = not rule.token_ids.isdisjoint(changed)
        else:
            hit = any(rule.passport_admits(p) for p in now) or _was_member(
                ctx, str(doc["_id"]), changed, owners
            )
        if hit:
            affected.append((str(doc["_id"]), doc["revision"]))
    return affected


def _current_passports(ctx: Context, brand_id: str, token_ids: list[str]) -> list[dict[str, Any]]:
    size = ctx.settings.in_chunk_size
    found: list[dict[str, Any]] = []
    for start in range(0, len(token_ids), size):
        query = {"brandId": brand_id, "tokenId": {"$in": token_ids[start : start + size]}}
        found += ctx.stores.passports.find(query, PASSPORT_FIELDS)
    return found


def _was_member(ctx: Context, audience_id: str, token_ids: list[str], owners: list[str]) -> bool:
    keys = AudienceKeys.published(ctx.settings.key_prefix, audience_id)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.exists(keys.meta)
    if token_ids:
        pipe.smismember(keys.recipients, token_ids)
    if owners:
        pipe.smismember(keys.owners, owners)
    cached, *memberships = pipe.execute()
    return not cached or any(any(flags) for flags in memberships)


def after_wallets(ctx: Context, addresses: list[str]) -> list[tuple[str, int]]:
    held = _passports_held(ctx, addresses) if addresses else {}
    if not held:
        return []
    profiles = wallets.profiles(ctx.stores.wallets, set(addresses), ctx.settings.in_chunk_size)
    now = datetime.now(UTC)
    affected = []
    for doc in ctx.stores.audiences.find({"brandId": {"$in": sorted(held)}}):
        rule = Rule.from_document(doc)
        owner_rule = rule.owner_rule(now)
        # An audience whose owner rule admits every wallet cannot be moved by a wallet change.
        if owner_rule.is_open:
            continue
        mine = held[rule.brand_id]
        owners = sorted({owner for p in mine if (owner := real_owner(p.get("owner")))})
        eligible = any(
            rule.passport_admits(p)
            and owner_rule.admits(profiles.get(real_owner(p["owner"]) or ""))
            for p in mine
        )
        if eligible or _was_member(ctx, str(doc["_id"]), [], owners):
            affected.append((str(doc["_id"]), doc["revision"]))
    return affected


def _passports_held(ctx: Context, addresses: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The passports these wallets hold now, by brand."""
    ordered = sorted(set(addresses))
    held: dict[str, list[dict[str, Any]]] = {}
    size = ctx.settings.in_chunk_size
    for start in range(0, len(ordered), size):
        query = {"owner": {"$in": ordered[start : start + size]}}
        for passport in ctx.stores.passports.find(query, {**PASSPORT_FIELDS, "brandId": 1}):
            held.setdefault(passport["brandId"], []).append(passport)
    return held
