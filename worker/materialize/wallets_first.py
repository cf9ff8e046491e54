"""The other evaluation order: the wallets the owner rule admits first, then their passports.

Only sound when the owner rule turns away an owner with no profile (custodial only, a country
list, or "active in the last N days"): every member's owner then has a stored profile that the
wallet filter finds. Worth it when those wallets are few next to the passports a brand scan
would read; `chosen` decides with two counts that stop early.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from worker.audience.rule import OwnerRule, Rule, real_owner
from worker.logs import event
from worker.store import passports, wallets
from worker.store.mongo import Stores

if TYPE_CHECKING:
    from worker.materialize.evaluate import Bounds, ScanLimits, ScanStats

log = logging.getLogger(__name__)

# Past this many passports the exact figure changes no choice worth making, so the estimate
# that sets the wallet threshold stops there.
PASSPORT_COUNT_CAP = 10_000_000
# Admitted wallets per request: an address and three small fields each (about 5 MB a page).
# Fewer, larger pages matter where a store pays to find its place again on every page.
WALLET_PAGE = 50_000


@dataclass(frozen=True)
class Scan:
    """One evaluation's stores, rule, limits, counters and owner range."""

    stores: Stores
    rule: Rule
    owner_rule: OwnerRule
    limits: ScanLimits
    stats: ScanStats
    bounds: Bounds


def batches_if_chosen(scan: Scan) -> Iterator[list[dict[str, Any]]] | None:
    """The passport batches in this order when it is the one to take, else None."""
    return _passport_batches(scan) if chosen(scan) else None


def chosen(scan: Scan) -> bool:
    """Whether this run reads the wallets first: never when a missing profile could qualify."""
    limits, owner_rule = scan.limits, scan.owner_rule
    if not owner_rule.rejects_missing or limits.owner_first == "passports":
        return False
    if limits.owner_first == "wallets":
        return True
    scanned = _passports_to_scan(scan)
    threshold = scanned // limits.owner_first_ratio
    query = owner_rule.wallet_filter(limits.in_chunk_size)
    few = not wallets.more_than(scan.stores.wallets, query, threshold)
    scan.stats.store_round_trips += 1
    event(log, "scan.order", logging.DEBUG, wallets_first=few, passports=scanned)
    return few


def _passport_batches(scan: Scan) -> Iterator[list[dict[str, Any]]]:
    """The rule's candidate passports whose owners the owner rule admits, in batches.

    Each passport comes once: an address is in one chunk, and a passport has one owner.
    """
    limits = scan.limits
    queries = _passport_queries(scan.rule, limits)
    for chunk in _owner_chunks(scan.stores, scan.owner_rule, limits, scan.stats):
        for query in queries:
            # Bounded by the chunk's lowest and highest address, so a store that cannot use
            # the (brandId, owner) index for `$in` still walks only that stretch of it.
            owners = {"$in": chunk, "$gte": min(chunk), "$lte": max(chunk)}
            owned = {**query, "owner": owners}
            yield from passports.scan(scan.stores.passports, owned, limits.batch_size, *scan.bounds)


def _passport_queries(rule: Rule, limits: ScanLimits) -> list[dict[str, Any]]:
    if rule.tag_rule == "tokenIds":
        # The list may be long and the scan walks owners: Rule.passport_admits checks it.
        return [{"brandId": {"$eq": rule.brand_id}}]
    return list(rule.passport_filters(limits.in_chunk_size))


def _owner_chunks(
    stores: Stores, owner_rule: OwnerRule, limits: ScanLimits, stats: ScanStats
) -> Iterator[list[str]]:
    """Admitted addresses, `in_chunk_size` at a time; full chunks, as each costs a query."""
    query = owner_rule.wallet_filter(limits.in_chunk_size)
    size = limits.in_chunk_size
    pending: list[str] = []
    for page in wallets.matching(stores.wallets, query, WALLET_PAGE):
        stats.store_round_trips += 1
        pending.extend(_admitted(owner_rule, page))
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _admitted(owner_rule: OwnerRule, page: list[dict[str, Any]]) -> list[str]:
    # An address not already in the passports' owner form (lower case, trimmed, not the zero
    # address) is never found by the owner lookup of the other order either.
    return [
        profile["_id"]
        for profile in page
        if real_owner(profile["_id"]) == profile["_id"] and owner_rule.admits(profile)
    ]


def _passports_to_scan(scan: Scan) -> int:
    """About how many passports the brand scan would walk (within a factor of two)."""
    rule = scan.rule
    if rule.tag_rule == "tokenIds":
        return len(rule.token_ids)  # the list bounds that scan; no need to ask the store
    estimate = passports.size_estimate(scan.stores.passports, rule.brand_id, PASSPORT_COUNT_CAP)
    scan.stats.store_round_trips += estimate.requests
    return estimate.passports
