"""Reading only the profiles that decide: the members are those of reading every profile.

A scan asks the wallets only for the profiles that an owner rule decides unlike a missing
one. These tests hold near misses on both sides of each filter (values a query lets through
that the rule turns away, and the activity boundary to the millisecond) and check the
members, worked out by hand, with large and tiny batches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from worker.audience.rule import Rule
from worker.materialize.evaluate import ScanLimits
from worker.materialize.run import Context

from .test_rule_semantics import AS_OF, BRAND, A, B, C, D, E, addr, passport, seed, wallet
from .test_wallets_first import members

F, G, H = addr("f"), addr("7"), addr("8")
# Half-way through a second, so a store comparing whole seconds would show here.
NOW = AS_OF + timedelta(milliseconds=500)
SINCE = NOW - timedelta(days=30)
MS = timedelta(milliseconds=1)
LIMITS = [ScanLimits(5000, 1000), ScanLimits(2, 2)]

# A: custodial, active 1 ms after the window opens.   B: not custodial, 1 ms before it.
# C: custodial as a list (not `true`), active exactly when it opens.   D: no profile.
# E: custodial as text, activity as text (no recorded activity).
# F: activity as a list of dates (no recorded activity).   G: custodial as 1, no activity.
# H: custodial, active a day before the window.
WALLETS = [
    wallet(A, custodial=True, last_active=SINCE + MS),
    wallet(B, custodial=False, last_active=SINCE - MS),
    {"_id": C, "custodial": [True], "lastActiveAt": SINCE},
    {"_id": E, "custodial": "true", "lastActiveAt": "2022-10-19T00:00:00Z"},
    {"_id": F, "custodial": False, "lastActiveAt": [SINCE + timedelta(days=1)]},
    {"_id": G, "custodial": 1},
    wallet(H, custodial=True, last_active=SINCE - timedelta(days=1)),
]
OWNERS = [A, B, C, D, E, F, G, H]
PASSPORTS = [passport(str(n), owner) for n, owner in enumerate(OWNERS, start=1)]

CASES = [
    # Only A and H are custodial (`true` itself): every other owner stays.
    ({"custodialWallet": "no"}, {"2", "3", "4", "5", "6", "7"}),
    # A (1 ms in) and C (exactly at the start) were active in the window: the rest stay.
    (
        {"isWalletActiveSinceNumberOfDays": 30, "walletActivity": "inactive"},
        {"2", "4", "5", "6", "7", "8"},
    ),
    # Both: H goes too, as custodial.
    (
        {
            "custodialWallet": "no",
            "isWalletActiveSinceNumberOfDays": 30,
            "walletActivity": "inactive",
        },
        {"2", "4", "5", "6", "7"},
    ),
    # Custodial only: A and H (a missing profile is out, so the admitted ones are read).
    ({"custodialWallet": "yes"}, {"1", "8"}),
    # Active in the window: A and C.
    ({"isWalletActiveSinceNumberOfDays": 30, "walletActivity": "active"}, {"1", "3"}),
]


def rule(**fields: Any) -> Rule:
    return Rule.from_document({"brandId": BRAND, **fields})


@pytest.mark.parametrize(("fields", "tokens"), CASES)
def test_reading_the_deciding_profiles_gives_the_hand_worked_members(
    ctx: Context, fields: dict[str, Any], tokens: set[str]
) -> None:
    seed(ctx, PASSPORTS, WALLETS)
    expected = {(token, OWNERS[int(token) - 1]) for token in tokens}
    for limits in LIMITS:
        assert members(ctx, rule(**fields), limits, NOW) == expected, limits


def test_the_filters_ask_for_the_profiles_that_decide_unlike_a_missing_one() -> None:
    def filters(**fields: Any) -> list[dict[str, Any]]:
        return rule(**fields).owner_rule(NOW).deciding_filters(max_in=10)

    inactive = {"isWalletActiveSinceNumberOfDays": 30, "walletActivity": "inactive"}
    # A missing profile is in: read the ones the rule turns away, one filter per reason.
    assert filters(custodialWallet="no") == [{"custodial": {"$eq": True}}]
    assert filters(**inactive) == [{"lastActiveAt": {"$gte": SINCE}}]
    assert filters(custodialWallet="no", **inactive) == [
        {"custodial": {"$eq": True}},
        {"lastActiveAt": {"$gte": SINCE}},
    ]
    # A missing profile is out: read the ones it may admit.
    assert filters(custodialWallet="yes", countries=["Japan"]) == [
        {"custodial": {"$eq": True}, "country": {"$in": ["Japan"]}}
    ]
    # No owner rule: nothing to read.
    assert filters() == [] and filters(walletActivity="all") == []
