"""Reading the admitted wallets first gives the same members as scanning the passports first.

Small hand-made brands in the embedded store; each rule runs both ways (and with tiny batch
and chunk sizes, so wallet pages and address chunks span several queries). The expected
members are worked out by hand from the data below, not taken from a run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from worker.audience.rule import Rule
from worker.materialize import wallets_first
from worker.materialize.evaluate import Match, ScanLimits, ScanStats, matches
from worker.materialize.run import Context
from worker.settings import Settings

from .test_rule_semantics import (
    AS_OF,
    BRAND,
    OTHER_BRAND,
    ZERO,
    A,
    B,
    C,
    D,
    E,
    addr,
    passport,
    run,
    seed,
    wallet,
)

F, G, H = addr("f"), addr("7"), addr("8")
LIMITS = [ScanLimits(5000, 1000, owner_first=mode) for mode in ("wallets", "passports", "auto")] + [
    ScanLimits(2, 2, owner_first=mode) for mode in ("wallets", "passports", "auto")
]

# A: custodial, Japan, active a day ago.   B: custodial, France, active 100 days ago.
# C: non-custodial, Japan, active 10 days ago.   D: no profile.   E: custodial, nothing else.
# F: custodial, Japan, but holds only another brand's passport.
# The zero address has a custodial Japanese profile: its (burned) passport must stay out.
# G and H hold passports 11 and 12 and are out of every rule below.
WALLETS = [
    wallet(A, custodial=True, country="Japan", last_active=AS_OF - timedelta(days=1)),
    wallet(B, custodial=True, country="France", last_active=AS_OF - timedelta(days=100)),
    wallet(C, custodial=False, country="Japan", last_active=AS_OF - timedelta(days=10)),
    wallet(E, custodial=True),
    wallet(F, custodial=True, country="Japan", last_active=AS_OF),
    wallet(ZERO, custodial=True, country="Japan", last_active=AS_OF),
    # Near misses a query may let through but the owner rule turns away: custodial as the
    # number 1 rather than true, and a country list rather than one country.
    {"_id": G, "custodial": 1, "country": None, "lastActiveAt": AS_OF},
    {"_id": H, "custodial": False, "country": ["Japan"], "lastActiveAt": AS_OF},
]
PASSPORTS = [
    passport("1", A, ["x"]),
    passport("2", A, ["x", "y"], product="p1"),
    passport("10", B, ["y"], product="p2"),
    passport("9", B, ["x"], product="p1"),
    passport("3", C, ["x"]),
    passport("4", D, ["x"], product="p1"),
    passport("5", E, ["x", "y"]),
    passport("6", None, ["x"]),
    passport("7", ZERO, ["x"], product="p1"),
    passport("8", "", ["x"]),
    passport("11", G, ["x"]),
    passport("12", H, ["x"]),
    passport("1", F, ["x"], brand=OTHER_BRAND),
]


def rule(**fields: Any) -> Rule:
    return Rule.from_document({"brandId": BRAND, **fields})


def members(
    ctx: Context, the_rule: Rule, limits: ScanLimits, as_of: datetime = AS_OF
) -> set[Match]:
    found: set[tuple[str, str]] = set()
    for batch in matches(ctx.stores, the_rule, as_of, limits, ScanStats()):
        assert not found.intersection(batch), "a passport came twice"
        found.update(batch)
    return found


CASES = [
    # custodial yes, any of [x]: A, B and E are custodial; D has no profile, so it is out.
    (
        {"custodialWallet": "yes", "tags": ["x"], "tagRule": "or"},
        {("1", A), ("2", A), ("5", E), ("9", B)},
    ),
    # Japan: A and C (F's passport is another brand's; the zero address's is burned).
    ({"countries": ["Japan"]}, {("1", A), ("2", A), ("3", C)}),
    # Active in the last 30 days: A and C; with every one of [x, y]: only passport 2.
    (
        {
            "isWalletActiveSinceNumberOfDays": 30,
            "walletActivity": "active",
            "tags": ["x", "y"],
            "tagRule": "and",
        },
        {("2", A)},
    ),
    # Product p1 from custodial owners: 2 (A) and 9 (B); 4 is D's, 7 is burned.
    (
        {"tagRule": "productIds", "productIds": ["p1"], "custodialWallet": "yes"},
        {("2", A), ("9", B)},
    ),
    # Token ids from Japanese or French owners: 1 (A), 3 (C), 10 (B); 4 is D's, 7 burned.
    (
        {
            "tagRule": "tokenIds",
            "tokenIds": ["1", "3", "10", "4", "7"],
            "countries": ["Japan", "France"],
        },
        {("1", A), ("3", C), ("10", B)},
    ),
    # Custodial and Japanese, active in the last 5 days: A only.
    (
        {
            "custodialWallet": "yes",
            "countries": ["Japan", "Spain"],
            "isWalletActiveSinceNumberOfDays": 5,
            "walletActivity": "active",
        },
        {("1", A), ("2", A)},
    ),
]


@pytest.mark.parametrize(("fields", "expected"), CASES)
def test_both_orders_give_the_hand_worked_members(
    ctx: Context, fields: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    seed(ctx, PASSPORTS, WALLETS)
    the_rule = rule(**fields)
    assert the_rule.owner_rule(AS_OF).rejects_missing
    for limits in LIMITS:
        assert members(ctx, the_rule, limits) == expected, limits


def test_a_rule_that_admits_missing_profiles_never_reads_wallets_first(ctx: Context) -> None:
    seed(ctx, PASSPORTS, WALLETS)
    # Non-custodial keeps C, D (no profile), G (1 is not true) and H: 3, 4, 11 and 12.
    non_custodial = rule(custodialWallet="no")
    assert not non_custodial.owner_rule(AS_OF).rejects_missing
    forced = ScanLimits(5000, 1000, owner_first="wallets")
    assert members(ctx, non_custodial, forced) == {("3", C), ("4", D), ("11", G), ("12", H)}


def test_the_activity_boundary_is_decided_to_the_millisecond(ctx: Context) -> None:
    # The window starts half-way through a second: a store that compares whole seconds
    # returns the wallet 1 ms before it too, and the owner rule must still turn it away.
    as_of = AS_OF + timedelta(milliseconds=500)
    since = as_of - timedelta(days=30)
    seed(
        ctx,
        [passport("1", A), passport("2", B), passport("3", C), passport("4", D)],
        [
            wallet(A, last_active=since - timedelta(milliseconds=1)),
            wallet(B, last_active=since),
            wallet(C, last_active=since + timedelta(milliseconds=1)),
        ],
    )
    the_rule = rule(isWalletActiveSinceNumberOfDays=30, walletActivity="active")
    for limits in LIMITS:
        assert members(ctx, the_rule, limits, as_of) == {("2", B), ("3", C)}, limits


@pytest.mark.parametrize("first", [True, False])
def test_unique_owner_keeps_each_owners_first_token_either_way(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, first: bool
) -> None:
    seed(ctx, PASSPORTS, WALLETS)
    monkeypatch.setattr(wallets_first, "chosen", lambda *_: first)
    result = run(ctx, {"uniqueOwner": True, "custodialWallet": "yes"})
    # Custodial owners A (1, 2), B (9, 10), E (5): first by numeric order 1, 9 and 5.
    assert (result.outcome.count_nft, result.outcome.count_owner) == (5, 3)
    assert result.recipients == {"1", "9", "5"}
    assert result.owners == {A, B, E}


def choice_and_reads(ctx: Context, the_rule: Rule) -> tuple[bool, int]:
    limits = ScanLimits(5000, 1000, owner_first="auto", owner_first_ratio=20)
    owner_rule = the_rule.owner_rule(AS_OF)
    stats = ScanStats()
    picked = wallets_first.chosen(
        wallets_first.Scan(ctx.stores, the_rule, owner_rule, limits, stats, (None, None))
    )
    stats = ScanStats()
    for _ in matches(ctx.stores, the_rule, AS_OF, limits, stats):
        pass
    return picked, stats.passports_read


def test_auto_reads_wallets_first_only_when_they_are_few(ctx: Context) -> None:
    # 100 passports, one per owner; owner n is custodial when n is even, Japanese when n < 3.
    owners = [addr_n(n) for n in range(100)]
    seed(
        ctx,
        [passport(str(n), owner) for n, owner in enumerate(owners)],
        [
            wallet(o, custodial=n % 2 == 0, country="Japan" if n < 3 else None)
            for n, o in enumerate(owners)
        ],
    )
    # 100 passports are estimated at 128, the next power of two. Japanese and custodial:
    # owners 0 and 2, under 128 / 20 = 6 wallets: wallets first, reading their two passports.
    assert choice_and_reads(ctx, rule(countries=["Japan"], custodialWallet="yes")) == (True, 2)
    # Custodial alone: 50 wallets, more than 6: the brand scan reads all 100.
    assert choice_and_reads(ctx, rule(custodialWallet="yes")) == (False, 100)
    # Non-custodial admits owners with no profile: never wallets first.
    assert choice_and_reads(ctx, rule(custodialWallet="no", countries=[])) == (False, 100)


def addr_n(n: int) -> str:
    return f"0x{n + 1:040x}"


def test_settings_name_the_order_and_the_ratio(monkeypatch: pytest.MonkeyPatch) -> None:
    # Opt-in: wallets first misses passports whose owner is stored in another case.
    assert Settings().owner_first == "passports"
    monkeypatch.setenv("OWNER_FIRST", "wallets")
    monkeypatch.setenv("OWNER_FIRST_RATIO", "7")
    settings = Settings()
    assert (settings.owner_first, settings.owner_first_ratio) == ("wallets", 7)
    monkeypatch.setenv("OWNER_FIRST", "sometimes")
    with pytest.raises(ValueError):
        Settings()
