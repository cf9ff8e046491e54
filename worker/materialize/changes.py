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

# (audience id, revision), the changed token ids, the owners concerned.
Candidate = tuple[tuple[str, int], list[str], list[str]]
PASSPORT_FIELDS = {"_id": 0, "tokenId": 1, "tags": 1, "productId": 1, "owner": 1}


def after_passports(ctx: Context, brand_id: str, token_ids: list[str]) -> list[tuple[str, int]]:
    changed = sorted(set(token_ids))
    if not changed:
        return []
    now = _current_passports(ctx, brand_id, changed)
    owners = _owners(now)
    hits: list[tuple[str, int]] = []
    maybe: list[Candidate] = []
    for doc in ctx.stores.audiences.find({"brandId": brand_id}):
        rule, entry = Rule.from_document(doc), (str(doc["_id"]), doc["revision"])
        if rule.tag_rule == "tokenIds":
            if not rule.token_ids.isdisjoint(changed):
                hits.append(entry)
        elif any(rule.passport_admits(p) for p in now):
            hits.append(entry)
        else:
            maybe.append((entry, changed, owners))
    return hits + _were_members(ctx, maybe)


def _current_passports(ctx: Context, brand_id: str, token_ids: list[str]) -> list[dict[str, Any]]:
    size = ctx.settings.in_chunk_size
    found: list[dict[str, Any]] = []
    for start in range(0, len(token_ids), size):
        query = {"brandId": brand_id, "tokenId": {"$in": token_ids[start : start + size]}}
        found += ctx.stores.passports.find(query, PASSPORT_FIELDS)
    return found


def _owners(passports: list[dict[str, Any]]) -> list[str]:
    return sorted({owner for p in passports if (owner := real_owner(p.get("owner")))})


def _were_members(ctx: Context, candidates: list[Candidate]) -> list[tuple[str, int]]:
    """The candidates with no cached result, or whose cached result holds one of their
    tokens or owners: asked of Redis in one pipelined round trip for all of them."""
    pipe = ctx.redis.pipeline(transaction=False)
    for (audience_id, _), token_ids, owners in candidates:
        keys = AudienceKeys.published(ctx.settings.key_prefix, audience_id)
        pipe.exists(keys.meta)
        pipe.smismember(keys.recipients, token_ids or [""])
        pipe.smismember(keys.owners, owners or [""])
    answers = pipe.execute() if candidates else []
    found = []
    for n, (entry, _, _) in enumerate(candidates):
        cached, tokens, holders = answers[3 * n : 3 * n + 3]
        if not cached or any(tokens) or any(holders):
            found.append(entry)
    return found


def after_wallets(ctx: Context, addresses: list[str]) -> list[tuple[str, int]]:
    held = _passports_held(ctx, addresses) if addresses else {}
    if not held:
        return []
    profiles = wallets.profiles(ctx.stores.wallets, set(addresses), ctx.settings.in_chunk_size)
    owners = {brand: _owners(mine) for brand, mine in held.items()}
    now = datetime.now(UTC)
    hits: list[tuple[str, int]] = []
    maybe: list[Candidate] = []
    for doc in ctx.stores.audiences.find({"brandId": {"$in": sorted(held)}}):
        rule, entry = Rule.from_document(doc), (str(doc["_id"]), doc["revision"])
        owner_rule = rule.owner_rule(now)
        # An audience whose owner rule admits every wallet cannot be moved by a wallet change.
        if owner_rule.is_open:
            continue
        eligible = any(
            rule.passport_admits(p)
            and owner_rule.admits(profiles.get(real_owner(p["owner"]) or ""))
            for p in held[rule.brand_id]
        )
        if eligible:
            hits.append(entry)
        else:
            maybe.append((entry, [], owners[rule.brand_id]))
    return hits + _were_members(ctx, maybe)


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
