"""The rule of one audience (contract section 4), compiled for the stores.

The passport part becomes a MongoDB filter; the owner part becomes a predicate over a wallet
profile, because a profile that is missing must count as "non-custodial, no country, no
activity", which a query on the wallets collection alone cannot express.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.audience.fields import DEFAULTS

ZERO_ADDRESS = "0x" + "0" * 40
WalletProfile = Mapping[str, Any]


def real_owner(owner: object) -> str | None:
    """The owner in lower case, or None for a burned or unclaimed passport."""
    if not isinstance(owner, str):
        return None
    owner = owner.strip().lower()
    return None if owner in ("", ZERO_ADDRESS) else owner


def token_sort_key(token_id: str) -> tuple[int, str]:
    """Length, then text: numeric order for plain decimal ids."""
    return len(token_id), token_id


@dataclass(frozen=True)
class OwnerRule:
    """The wallet-profile part of a rule, fixed at one evaluation instant."""

    custodial: str
    countries: frozenset[str]
    active_since: datetime | None
    activity: str

    @property
    def is_open(self) -> bool:
        """True when every wallet passes, so no profile needs to be read."""
        no_activity_rule = self.active_since is None or self.activity == "all"
        return self.custodial == "all" and not self.countries and no_activity_rule

    @property
    def rejects_missing(self) -> bool:
        """True when an owner with no profile is out, so only stored profiles can qualify:
        the condition for reading the matching wallets first."""
        return not self.admits(None)

    def wallet_filter(self, max_in: int) -> dict[str, Any]:
        """A MongoDB filter on the wallets that every admitted profile passes.

        It only narrows: `admits` still decides each wallet it returns. A country list longer
        than `max_in` is left to `admits` alone.
        """
        query: dict[str, Any] = {}
        if self.custodial == "yes":
            query["custodial"] = {"$eq": True}
        if 0 < len(self.countries) <= max_in:
            query["country"] = {"$in": sorted(self.countries)}
        if self.activity == "active" and self.active_since is not None:
            query["lastActiveAt"] = {"$gte": self.active_since}
        return query

    def deciding_filters(self, max_in: int) -> list[dict[str, Any]]:
        """Filters on the wallets that every profile deciding unlike a missing one passes.

        A profile that matches none of them is decided as if it were missing, so a batch's
        owners need only the profiles these find. Where a missing profile is out, those are
        the admitted ones; where it is in, the turned-away ones: custodial when only
        non-custodial wallets count, recently active when only inactive ones do. Separate
        filters rather than an `$or`, which some MongoDB-speaking servers answer without
        their indexes.
        """
        if self.rejects_missing:
            return [self.wallet_filter(max_in)]
        filters: list[dict[str, Any]] = []
        if self.custodial == "no":
            filters.append({"custodial": {"$eq": True}})
        if self.activity == "inactive" and self.active_since is not None:
            filters.append({"lastActiveAt": {"$gte": self.active_since}})
        return filters

    def admits(self, profile: WalletProfile | None) -> bool:
        profile = profile or {}
        custodial = profile.get("custodial") is True
        if self.custodial == "yes" and not custodial:
            return False
        if self.custodial == "no" and custodial:
            return False
        country = profile.get("country")
        # Only a country string can equal one of them (a stray list would not even hash).
        if self.countries and not (isinstance(country, str) and country in self.countries):
            return False
        return self._activity_admits(profile.get("lastActiveAt"))

    def _activity_admits(self, last_active: object) -> bool:
        if self.active_since is None or self.activity == "all":
            return True
        seen = _as_utc(last_active)
        recent = seen is not None and seen >= self.active_since
        return recent if self.activity == "active" else not recent


def _as_utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    # pymongo hands back naive datetimes that are UTC unless told otherwise.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Rule:
    """Everything that decides membership of one audience of one brand."""

    brand_id: str
    tag_rule: str
    tags: frozenset[str]
    token_ids: frozenset[str]
    product_ids: frozenset[str]
    unique_owner: bool
    custodial: str
    activity_days: int | None
    activity: str
    countries: frozenset[str]

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Rule:
        def field(name: str) -> Any:
            value = doc.get(name)
            return DEFAULTS[name] if value is None else value

        return cls(
            brand_id=doc["brandId"],
            tag_rule=field("tagRule"),
            tags=frozenset(field("tags")),
            token_ids=frozenset(field("tokenIds")),
            product_ids=frozenset(field("productIds")),
            unique_owner=bool(field("uniqueOwner")),
            custodial=field("custodialWallet"),
            activity_days=doc.get("isWalletActiveSinceNumberOfDays"),
            activity=field("walletActivity"),
            countries=frozenset(field("countries")),
        )

    def passport_filters(self, max_in: int) -> Iterator[dict[str, Any]]:
        """The passport rule as MongoDB filters whose matches never overlap.

        No `$in` list is longer than `max_in`: product ids are split into chunks (a passport
        has one product id, so the chunks' matches are disjoint); a longer tag list is left
        out of the query and decided by `passport_admits` alone. Token ids are the caller's.
        """
        # `$eq` means the same as a bare value to MongoDB; some MongoDB-speaking servers only
        # walk the (brandId, tokenId) index for the explicit form.
        query: dict[str, Any] = {"brandId": {"$eq": self.brand_id}}
        if self.tag_rule == "productIds":
            ordered = sorted(self.product_ids)
            for start in range(0, len(ordered), max_in):
                yield {**query, "productId": {"$in": ordered[start : start + max_in]}}
            return
        if self.tag_rule in ("or", "any") and 0 < len(self.tags) <= max_in:
            query["tags"] = {"$in": sorted(self.tags)}
        elif self.tag_rule in ("and", "all") and self.tags:
            query["tags"] = {"$all": sorted(self.tags)}
        yield query

    def passport_admits(self, passport: Mapping[str, Any]) -> bool:
        """The same passport rule in Python: the query narrows, this decides."""
        if self.tag_rule == "tokenIds":
            return passport.get("tokenId") in self.token_ids
        if self.tag_rule == "productIds":
            return passport.get("productId") in self.product_ids
        tags = passport.get("tags")
        held = set(tags) if isinstance(tags, list) else set()
        if not self.tags:
            return True
        if self.tag_rule in ("and", "all"):
            return held.issuperset(self.tags)
        return not held.isdisjoint(self.tags)

    def owner_rule(self, as_of: datetime) -> OwnerRule:
        days = self.activity_days
        since = as_of - timedelta(days=days) if days else None
        return OwnerRule(self.custodial, self.countries, since, self.activity)
