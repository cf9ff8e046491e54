"""Evaluating a rule against the stores as a stream of matching (tokenId, owner) batches.

Memory follows the batch size. Scans come in owner order, so the yes/no of the previous
batch's owners is all that needs keeping: a wallet profile is read once per run however many
passports its owner holds (twice when a batch ends inside them), and a brand with millions of
owners runs in the same memory as a small one. Token id lists come in chunks by id, so there
an owner's profile is read once per chunk that holds one of its passports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.audience.rule import OwnerRule, Rule, real_owner
from worker.materialize import wallets_first
from worker.materialize.prefetch import prefetched
from worker.store import passports, wallets
from worker.store.mongo import Stores

Match = tuple[str, str]
# Whether an owner rule is open does not depend on the instant it is evaluated at.
ANY_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
# A key range of a partitioned run: above the first, up to and with the second; None is open.
Bounds = tuple[str | None, str | None]


@dataclass(frozen=True)
class ScanLimits:
    batch_size: int
    in_chunk_size: int
    # "auto", "wallets" or "passports": which collection a rule with an owner rule reads first.
    owner_first: str = "passports"
    # "auto" reads the wallets first when at most the passports over this match.
    owner_first_ratio: int = 2


@dataclass
class ScanStats:
    store_round_trips: int = 0
    passports_read: int = 0


def matches(
    stores: Stores,
    rule: Rule,
    as_of: datetime,
    limits: ScanLimits,
    stats: ScanStats,
    bounds: Bounds = (None, None),
) -> Iterator[list[Match]]:
    """Yield the audience's members at `as_of`, a batch of passports at a time.

    Every store read (passports, and the profiles of their owners) runs ahead in a thread,
    so the store works on the next batches while the caller writes this one to Redis.
    `stats` is only written by that thread; it is complete once the batches run out.
    """
    owner_rule = rule.owner_rule(as_of)
    return prefetched(_evaluate(stores, rule, owner_rule, limits, stats, bounds), depth=2)


def _evaluate(
    stores: Stores,
    rule: Rule,
    owner_rule: OwnerRule,
    limits: ScanLimits,
    stats: ScanStats,
    bounds: Bounds,
) -> Iterator[list[Match]]:
    scan = wallets_first.Scan(stores, rule, owner_rule, limits, stats, bounds)
    batches = wallets_first.batches_if_chosen(scan)
    if batches is not None:
        yield from _counted(rule, batches, stats)  # every owner there is already admitted
        return
    decided: dict[str, bool] = {}
    for found in _counted(rule, passport_batches(stores, rule, limits, bounds), stats):
        if not owner_rule.is_open:
            decided = _decide(stores, owner_rule, {o for _, o in found}, decided, limits, stats)
            found = [(token, owner) for token, owner in found if decided[owner]]
        yield found


def _counted(rule: Rule, batches: Iterator[list[Any]], stats: ScanStats) -> Iterator[list[Match]]:
    """Each batch's passports that pass the passport rule, counting the reads."""
    for batch in batches:
        stats.store_round_trips += 1
        stats.passports_read += len(batch)
        yield _passport_matches(rule, batch)


def passport_batches(
    stores: Stores, rule: Rule, limits: ScanLimits, bounds: Bounds = (None, None)
) -> Iterator[list[Any]]:
    if rule.tag_rule == "tokenIds":
        # Token ids are never partitioned: the list itself bounds the work.
        return passports.by_token_ids(
            stores.passports, rule.brand_id, rule.token_ids, limits.in_chunk_size
        )
    key = scan_key(rule)
    return (
        batch
        for query in rule.passport_filters(limits.in_chunk_size)
        for batch in passports.scan(stores.passports, query, limits.batch_size, *bounds, key)
    )


def scan_key(rule: Rule) -> str:
    """The order a brand scan walks: by owner when profiles are read, else by tokenId."""
    return "tokenId" if rule.owner_rule(ANY_INSTANT).is_open else "owner"


def _passport_matches(rule: Rule, batch: list[dict[str, Any]]) -> list[Match]:
    found = []
    for passport in batch:
        owner = real_owner(passport.get("owner"))
        token = passport.get("tokenId")
        if owner and isinstance(token, str) and rule.passport_admits(passport):
            found.append((token, owner))
    return found


def _decide(
    stores: Stores,
    owner_rule: OwnerRule,
    owners: set[str],
    before: dict[str, bool],
    limits: ScanLimits,
    stats: ScanStats,
) -> dict[str, bool]:
    """The yes/no of this batch's owners, reading only profiles the last batch did not.

    Of those, only the profiles that decide unlike a missing one are asked for: about half
    of them for "inactive", and for a selective rule only the few it admits.
    """
    decided = {owner: before[owner] for owner in owners if owner in before}
    unknown = owners.difference(decided)
    if unknown:
        filters = owner_rule.deciding_filters(limits.in_chunk_size)
        size = limits.in_chunk_size
        profiles = wallets.profiles(stores.wallets, unknown, size, filters)
        stats.store_round_trips += -(-len(unknown) // size) * len(filters)
        decided.update((owner, owner_rule.admits(profiles.get(owner))) for owner in unknown)
    return decided
