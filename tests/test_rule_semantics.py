"""Who is in an audience (contract section 4), run through the real core on tiny data sets.

Every test writes a handful of passports and wallet profiles into an empty database of its
own, materializes one audience at a fixed instant and reads the result back where the
campaign stack reads it: the Outcome, the audience document and the three Redis keys.
The expected values are literals worked out by hand from the inline data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from worker.audience.fields import AudienceCreate
from worker.audience.rule import OwnerRule, Rule, real_owner, token_sort_key
from worker.materialize.run import Context, Outcome, Request, materialize
from worker.store import audiences

BRAND = "brand-a"
OTHER_BRAND = "brand-b"
AS_OF = datetime(2022, 10, 20, tzinfo=UTC)
ZERO = "0x" + "0" * 40


def addr(char: str) -> str:
    """A readable wallet address: `0x` and 40 times one hex digit."""
    return "0x" + char * 40


A, B, C, D, E = addr("a"), addr("b"), addr("c"), addr("d"), addr("e")


# Data and runs.


def passport(
    token: str,
    owner: str | None,
    tags: Iterable[str] = (),
    product: str | None = None,
    brand: str = BRAND,
) -> dict[str, Any]:
    return {
        "brandId": brand,
        "tokenId": token,
        "productId": product,
        "tags": list(tags),
        "owner": owner,
    }


def wallet(
    address: str,
    custodial: bool = False,
    country: str | None = None,
    last_active: datetime | None = None,
) -> dict[str, Any]:
    return {"_id": address, "custodial": custodial, "country": country, "lastActiveAt": last_active}


def seed(
    ctx: Context, passports: list[dict[str, Any]], wallets: Iterable[dict[str, Any]] = ()
) -> None:
    ctx.stores.passports.insert_many(passports)
    wallet_docs = list(wallets)
    if wallet_docs:
        ctx.stores.wallets.insert_many(wallet_docs)


@dataclass
class Result:
    outcome: Outcome
    doc: dict[str, Any]
    recipients: set[str]
    owners: set[str]
    meta: dict[str, str]
    audience_id: str


def texts(members: Iterable[object]) -> set[str]:
    """Redis set members; the context's client decodes responses to text."""
    found = set()
    for member in members:
        assert isinstance(member, str)
        found.add(member)
    return found


def key(ctx: Context, audience_id: str, name: str) -> str:
    return f"{ctx.settings.key_prefix}:{{{audience_id}}}:{name}"


def instant(value: object) -> datetime:
    """An instant as read back from the store.

    Real MongoDB returns a date; the embedded server hands back a date written by `$set` as
    naive UTC text. Both mean the same instant; anything else is a failure.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime), f"not an instant: {value!r}"
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create(ctx: Context, body: dict[str, Any], brand: str = BRAND) -> dict[str, Any]:
    fields = AudienceCreate.model_validate({"name": "semantics", **body}).stored()
    doc = audiences.new_document(brand, fields, datetime.now(UTC))
    return audiences.insert(ctx.stores.audiences, doc)


def rerun(ctx: Context, doc: dict[str, Any], as_of: datetime = AS_OF) -> Result:
    """Materialize the audience at `as_of` and check everything that must always hold."""
    outcome = materialize(ctx, Request(doc["_id"], None, as_of))
    audience_id = str(doc["_id"])
    stored = ctx.stores.audiences.find_one({"_id": doc["_id"]})
    assert stored is not None
    recipients = texts(ctx.redis.smembers(key(ctx, audience_id, "recipients")))
    owners = texts(ctx.redis.smembers(key(ctx, audience_id, "owners")))
    meta = {str(k): str(v) for k, v in ctx.redis.hgetall(key(ctx, audience_id, "meta")).items()}
    result = Result(outcome, stored, recipients, owners, meta, audience_id)
    _check_consistent(ctx, result, as_of)
    return result


def run(ctx: Context, body: dict[str, Any], as_of: datetime = AS_OF) -> Result:
    return rerun(ctx, create(ctx, body), as_of)


def _check_consistent(ctx: Context, result: Result, as_of: datetime) -> None:
    """The Outcome, the document and Redis describe one and the same run (sections 5, 7)."""
    outcome, doc, meta = result.outcome, result.doc, result.meta
    assert outcome.status == "done"
    assert outcome.revision == doc["revision"] == 1
    assert outcome.count_nft == doc["countNFT"]
    assert outcome.count_owner == doc["countOwner"]
    assert outcome.recipients == len(result.recipients)
    state = doc["materialization"]
    assert state["state"] == "ready"
    assert state["revision"] == 1
    assert instant(state["evaluatedAt"]) == as_of
    assert meta["revision"] == "1"
    assert meta["countNFT"] == str(doc["countNFT"])
    assert meta["countOwner"] == str(doc["countOwner"])
    assert datetime.fromisoformat(meta["evaluatedAt"]) == as_of
    assert len(result.owners) == doc["countOwner"]
    for name in ("recipients", "owners", "meta"):
        name_key = key(ctx, result.audience_id, name)
        if ctx.redis.exists(name_key):
            assert ctx.redis.ttl(name_key) > 0, f"{name} has no TTL"


def assert_members(result: Result, recipients: set[str], owners: set[str], count_nft: int) -> None:
    assert result.recipients == recipients
    assert result.owners == owners
    assert result.doc["countNFT"] == count_nft
    assert result.doc["countOwner"] == len(owners)


# 4.1 Candidates: the brand's passports with a real owner.


def test_only_passports_of_the_audience_brand_are_candidates(ctx: Context) -> None:
    seed(
        ctx,
        [
            passport("1", A, ["gold"]),
            passport("2", B, ["gold"]),
            # Same token id and tags, other brand: never part of brand-a's audience.
            passport("1", C, ["gold"], brand=OTHER_BRAND),
            passport("3", C, ["gold"], brand=OTHER_BRAND),
        ],
    )
    result = run(ctx, {"tags": ["gold"]})
    assert_members(result, {"1", "2"}, {A, B}, 2)


@pytest.mark.parametrize(
    "burned",
    [
        pytest.param({"owner": None}, id="null"),
        pytest.param({"owner": ""}, id="empty"),
        pytest.param({"owner": ZERO}, id="zero-address"),
        pytest.param({"owner": "0X" + "0" * 40}, id="zero-address-upper-case"),
        pytest.param({}, id="missing"),
    ],
)
@pytest.mark.parametrize("unique_owner", [False, True])
def test_burned_or_unclaimed_passports_are_never_counted(
    ctx: Context, burned: dict[str, Any], unique_owner: bool
) -> None:
    dead = {"brandId": BRAND, "tokenId": "1", "productId": "p", "tags": ["gold"], **burned}
    seed(ctx, [dead, passport("2", A, ["gold"], "p")], [wallet(A)])
    for body in (
        {"tags": ["gold"]},
        {"tagRule": "tokenIds", "tokenIds": ["1", "2"]},
        {"tagRule": "productIds", "productIds": ["p"]},
        {
            "tagRule": "all",
            "custodialWallet": "no",
            "isWalletActiveSinceNumberOfDays": 5,
            "walletActivity": "inactive",
        },
    ):
        result = run(ctx, {**body, "uniqueOwner": unique_owner})
        # Only token 2 of A is a candidate; token 1 has no real owner.
        assert_members(result, {"2"}, {A}, 1)


def test_only_burned_passports_give_an_empty_result(ctx: Context) -> None:
    seed(ctx, [passport("1", None), passport("2", ""), passport("3", ZERO)])
    result = run(ctx, {})
    assert result.doc["countNFT"] == 0
    assert result.doc["countOwner"] == 0
    assert result.meta["countNFT"] == "0"
    assert result.meta["countOwner"] == "0"
    assert ctx.redis.exists(key(ctx, result.audience_id, "recipients")) == 0
    assert ctx.redis.exists(key(ctx, result.audience_id, "owners")) == 0


def test_upper_case_owner_is_compared_in_lower_case(ctx: Context) -> None:
    upper = "0x" + "AB" * 20
    lower = upper.lower()
    seed(
        ctx,
        [passport("1", upper), passport("2", lower), passport("3", B)],
        # The profile is keyed by the lower-case address; it must be found for "0xABAB..".
        [wallet(lower, custodial=True, country="France"), wallet(B)],
    )
    result = run(ctx, {"custodialWallet": "yes", "countries": ["France"]})
    # One owner, written in two cases, holding two passports.
    assert_members(result, {"1", "2"}, {lower}, 2)

    unique = run(ctx, {"custodialWallet": "yes", "uniqueOwner": True})
    assert_members(unique, {"1"}, {lower}, 2)


# 4.2 Passport rule.

TAGGED = [
    passport("1", A, ["red"]),
    passport("2", A, ["blue"]),
    passport("3", B, ["red", "blue"]),
    passport("4", B, ["green"]),
    passport("5", C, []),
    passport("6", C, ["red", "blue", "green"]),
    passport("7", D, ["Red"]),
]


@pytest.mark.parametrize("alias", ["or", "any"])
def test_or_keeps_passports_carrying_at_least_one_tag(ctx: Context, alias: str) -> None:
    seed(ctx, TAGGED)
    result = run(ctx, {"tagRule": alias, "tags": ["red", "blue"]})
    # red or blue: 1, 2, 3, 6. Tags are case sensitive: "Red" (7) does not match.
    assert_members(result, {"1", "2", "3", "6"}, {A, B, C}, 4)


@pytest.mark.parametrize("alias", ["or", "any"])
def test_or_without_tags_keeps_every_candidate(ctx: Context, alias: str) -> None:
    seed(ctx, [*TAGGED, passport("8", None, ["red"])])
    result = run(ctx, {"tagRule": alias})
    assert_members(result, {"1", "2", "3", "4", "5", "6", "7"}, {A, B, C, D}, 7)


@pytest.mark.parametrize("alias", ["and", "all"])
def test_and_keeps_passports_carrying_every_tag_themselves(ctx: Context, alias: str) -> None:
    seed(ctx, TAGGED)
    result = run(ctx, {"tagRule": alias, "tags": ["red", "blue"]})
    # A holds red (1) and blue (2) on separate passports: the owner's union does not count.
    assert_members(result, {"3", "6"}, {B, C}, 2)

    single = run(ctx, {"tagRule": alias, "tags": ["green"]})
    assert_members(single, {"4", "6"}, {B, C}, 2)


@pytest.mark.parametrize("alias", ["and", "all"])
def test_and_without_tags_keeps_every_candidate(ctx: Context, alias: str) -> None:
    seed(ctx, [*TAGGED, passport("8", ZERO, ["red"])])
    result = run(ctx, {"tagRule": alias, "tags": []})
    assert_members(result, {"1", "2", "3", "4", "5", "6", "7"}, {A, B, C, D}, 7)


def test_token_ids_rule_ignores_tags(ctx: Context) -> None:
    seed(
        ctx,
        [
            *TAGGED,
            passport("9", None, ["red"]),
            passport("4", E, ["red"], brand=OTHER_BRAND),
        ],
    )
    result = run(
        ctx,
        {
            "tagRule": "tokenIds",
            # "red" is ignored; 9 is unclaimed, 404 does not exist.
            "tags": ["red"],
            "tokenIds": ["4", "5", "7", "9", "404"],
        },
    )
    # 4 (green, B), 5 (no tags, C), 7 ("Red", D); brand-b's token 4 belongs to E: not here.
    assert_members(result, {"4", "5", "7"}, {B, C, D}, 3)


def test_token_ids_given_as_integers_and_text_match_string_ids(ctx: Context) -> None:
    seed(ctx, TAGGED)
    as_ints = run(ctx, {"tagRule": "tokenIds", "tokenIds": [1, 4]})
    assert_members(as_ints, {"1", "4"}, {A, B}, 2)
    as_text = run(ctx, {"tagRule": "tokenIds", "tokenIds": "1, 4"})
    assert_members(as_text, {"1", "4"}, {A, B}, 2)


def test_product_ids_rule_ignores_tags(ctx: Context) -> None:
    seed(
        ctx,
        [
            passport("1", A, ["red"], "hat"),
            passport("2", A, [], "shoe"),
            passport("3", B, ["blue"], "hat"),
            passport("4", C, ["red"], "coat"),
            passport("5", D, ["red"], None),
            passport("6", None, ["red"], "hat"),
            passport("7", E, ["red"], "hat", brand=OTHER_BRAND),
            passport("8", E, [], "Hat"),
        ],
    )
    result = run(ctx, {"tagRule": "productIds", "tags": ["red"], "productIds": ["hat", "shoe"]})
    # hat or shoe, whatever the tags: 1, 2, 3. Not 6 (unclaimed), 7 (other brand), 8 ("Hat").
    assert_members(result, {"1", "2", "3"}, {A, B}, 3)


# 4.3 Owner rule.

OWNERS = [
    passport("1", A),
    passport("2", A),
    passport("3", B),
    passport("4", C),
    passport("5", D),
]
PROFILES = [
    wallet(A, custodial=True, country="France"),
    wallet(B, custodial=False, country="Spain"),
    wallet(C, custodial=True, country="france"),
    # D has no profile at all.
]


@pytest.mark.parametrize(
    ("custodial", "tokens", "owners"),
    [
        ("yes", {"1", "2", "4"}, {A, C}),
        # D has no profile: it counts as non-custodial.
        ("no", {"3", "5"}, {B, D}),
        ("all", {"1", "2", "3", "4", "5"}, {A, B, C, D}),
    ],
)
def test_custodial_wallet(ctx: Context, custodial: str, tokens: set[str], owners: set[str]) -> None:
    seed(ctx, OWNERS, PROFILES)
    result = run(ctx, {"custodialWallet": custodial})
    assert_members(result, tokens, owners, len(tokens))


@pytest.mark.parametrize(
    ("countries", "tokens", "owners"),
    [
        # Exact and case sensitive: "France" is A only, "france" is C only.
        (["France"], {"1", "2"}, {A}),
        (["france"], {"4"}, {C}),
        (["France", "Spain"], {"1", "2", "3"}, {A, B}),
        ("France|Spain", {"1", "2", "3"}, {A, B}),
        (["FRANCE", "Germany"], set(), set()),
    ],
)
def test_countries_match_exactly(
    ctx: Context, countries: Any, tokens: set[str], owners: set[str]
) -> None:
    seed(ctx, OWNERS, PROFILES)
    result = run(ctx, {"countries": countries})
    assert_members(result, tokens, owners, len(tokens))


def test_wallet_without_country_is_out_when_countries_are_given(ctx: Context) -> None:
    seed(
        ctx,
        [passport("1", A), passport("2", B), passport("3", C)],
        [wallet(A, country="Japan"), wallet(B, country=None)],
    )
    # B has a profile without a country, C has no profile: both out.
    assert_members(run(ctx, {"countries": ["Japan"]}), {"1"}, {A}, 1)
    # Without countries, nobody is out for lack of one.
    assert_members(run(ctx, {"countries": []}), {"1", "2", "3"}, {A, B, C}, 3)


# Activity. T = 2022-10-20T00:00Z, N = 10: S = 2022-10-10T00:00Z.
S10 = AS_OF - timedelta(days=10)
ACTIVITY_PASSPORTS = [passport(str(n), owner) for n, owner in enumerate([A, B, C, D, E], 1)]
ACTIVITY_PROFILES = [
    wallet(A, last_active=S10),  # exactly S: active
    wallet(B, last_active=S10 - timedelta(milliseconds=1)),  # just before S: inactive
    wallet(C, last_active=AS_OF - timedelta(hours=1)),  # recent: active
    wallet(D, last_active=None),  # no recorded activity: inactive
    # E has no profile: no recorded activity, inactive.
]


@pytest.mark.parametrize(
    ("activity", "tokens", "owners"),
    [
        ("active", {"1", "3"}, {A, C}),
        ("inactive", {"2", "4", "5"}, {B, D, E}),
        ("all", {"1", "2", "3", "4", "5"}, {A, B, C, D, E}),
    ],
)
def test_wallet_activity_over_n_days(
    ctx: Context, activity: str, tokens: set[str], owners: set[str]
) -> None:
    seed(ctx, ACTIVITY_PASSPORTS, ACTIVITY_PROFILES)
    body = {"isWalletActiveSinceNumberOfDays": 10, "walletActivity": activity}
    assert_members(run(ctx, body), tokens, owners, len(tokens))


def test_activity_window_is_counted_back_from_as_of(ctx: Context) -> None:
    seed(ctx, ACTIVITY_PASSPORTS, ACTIVITY_PROFILES)
    body = {"isWalletActiveSinceNumberOfDays": 10, "walletActivity": "active"}
    # One day later S moves to 2022-10-11: A (active on 10-10) drops out, C stays.
    later = run(ctx, body, as_of=AS_OF + timedelta(days=1))
    assert_members(later, {"3"}, {C}, 1)
    # The same instant written in another zone is the same T.
    paris = AS_OF.astimezone(timezone(timedelta(hours=2)))
    same = run(ctx, body, as_of=paris)
    assert_members(same, {"1", "3"}, {A, C}, 2)


@pytest.mark.parametrize("days", [None, 0])
@pytest.mark.parametrize("activity", ["active", "inactive"])
def test_no_activity_rule_when_days_is_null_or_zero(
    ctx: Context, days: int | None, activity: str
) -> None:
    seed(ctx, ACTIVITY_PASSPORTS, ACTIVITY_PROFILES)
    body = {"isWalletActiveSinceNumberOfDays": days, "walletActivity": activity}
    result = run(ctx, body)
    assert_members(result, {"1", "2", "3", "4", "5"}, {A, B, C, D, E}, 5)


def test_owner_without_profile(ctx: Context) -> None:
    """No profile: non-custodial, no country, no recorded activity."""
    seed(ctx, [passport("1", A), passport("2", A)])
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"custodialWallet": "no"}, True),
        ({"custodialWallet": "yes"}, False),
        ({"countries": ["France"]}, False),
        ({"isWalletActiveSinceNumberOfDays": 36500, "walletActivity": "active"}, False),
        ({"isWalletActiveSinceNumberOfDays": 1, "walletActivity": "inactive"}, True),
        ({"isWalletActiveSinceNumberOfDays": 1, "walletActivity": "all"}, True),
    ]
    for body, kept in cases:
        result = run(ctx, body)
        if kept:
            assert_members(result, {"1", "2"}, {A}, 2)
        else:
            assert_members(result, set(), set(), 0)
            assert ctx.redis.exists(key(ctx, result.audience_id, "recipients")) == 0
            assert result.meta["countNFT"] == "0"


def test_owner_rules_combine(ctx: Context) -> None:
    seed(
        ctx,
        [passport("1", A, ["x"]), passport("2", B, ["x"]), passport("3", C, ["x"])],
        [
            wallet(A, custodial=True, country="Italy", last_active=AS_OF - timedelta(days=2)),
            wallet(B, custodial=True, country="Italy", last_active=AS_OF - timedelta(days=20)),
            wallet(C, custodial=False, country="Italy", last_active=AS_OF - timedelta(days=2)),
        ],
    )
    body = {
        "tags": "x",
        "custodialWallet": "yes",
        "countries": "Italy",
        "isWalletActiveSinceNumberOfDays": 7,
        "walletActivity": "active",
    }
    # B is too long inactive, C is not custodial.
    assert_members(run(ctx, body), {"1"}, {A}, 1)


# 4.4 and 4.5: counts and recipients.


@pytest.mark.parametrize("batch_size", [5000, 2])
def test_unique_owner_keeps_the_first_token_by_length_then_text(
    ctx: Context, batch_size: int
) -> None:
    small = Context(
        ctx.settings.model_copy(update={"batch_size": batch_size}), ctx.stores, ctx.redis
    )
    seed(
        small,
        [
            # A: "9" sorts before "10" and "100" (length first), not "10" or "100" (text first).
            passport("10", A, ["x"]),
            passport("9", A, ["x"]),
            passport("100", A, ["x"]),
            # B: "1" is B's shortest id but does not carry "x": the pick is among M only.
            passport("1", B, ["y"]),
            passport("20", B, ["x"]),
            passport("3a", B, ["x"]),
            # C: one passport.
            passport("007", C, ["x"]),
        ],
    )
    every = run(small, {"tags": ["x"]})
    assert_members(every, {"10", "9", "100", "20", "3a", "007"}, {A, B, C}, 6)
    assert every.outcome.recipients == 6

    unique = run(small, {"tags": ["x"], "uniqueOwner": True})
    # countNFT still counts every passport of M; recipients are one per owner.
    assert_members(unique, {"9", "20", "007"}, {A, B, C}, 6)
    assert unique.outcome.recipients == 3

    again = rerun(small, unique.doc)
    assert again.recipients == {"9", "20", "007"}
    assert again.doc["countNFT"] == 6


def test_counts_on_a_small_brand_worked_by_hand(ctx: Context) -> None:
    """One audience with every kind of rule, on data small enough to check on paper."""
    old = AS_OF - timedelta(days=400)
    recent = AS_OF - timedelta(days=3)
    seed(
        ctx,
        [
            passport("1", A, ["gold", "vip"]),
            passport("2", A, ["gold"]),
            passport("3", B, ["gold", "vip"]),
            passport("4", C, ["vip"]),
            passport("5", C, ["gold", "vip"]),
            passport("12", C, ["gold", "vip"]),
            passport("6", D, ["gold", "vip"]),
            passport("7", None, ["gold", "vip"]),
            passport("8", E, ["gold", "vip"]),
            passport("11", A, ["gold", "vip"], brand=OTHER_BRAND),
        ],
        [
            wallet(A, custodial=False, country="Spain", last_active=recent),
            wallet(B, custodial=False, country="Spain", last_active=old),
            wallet(C, custodial=False, country="Portugal", last_active=recent),
            wallet(D, custodial=True, country="Spain", last_active=recent),
            # E: no profile.
        ],
    )
    body = {
        "tagRule": "all",
        "tags": ["gold", "vip"],
        "custodialWallet": "no",
        "countries": ["Spain", "Portugal"],
        "isWalletActiveSinceNumberOfDays": 30,
        "walletActivity": "active",
    }
    # gold+vip passports of brand-a with a real owner: 1 (A), 3 (B), 5, 12 (C), 6 (D), 8 (E).
    # Owner rule: B last active 400 days ago (out), D custodial (out), E no profile (out).
    # M = {1, 5, 12}: countNFT 3, owners A and C: countOwner 2.
    result = run(ctx, body)
    assert_members(result, {"1", "5", "12"}, {A, C}, 3)
    assert result.outcome.count_nft == 3
    assert result.outcome.count_owner == 2
    assert result.outcome.recipients == 3
    # uniqueOwner: A -> "1"; C -> "5" (length 1 before "12"). Still 3 passports in M.
    unique = run(ctx, {**body, "uniqueOwner": True})
    assert_members(unique, {"1", "5"}, {A, C}, 3)
    assert unique.outcome.recipients == 2
    # Inactive instead: B (old) and E (no profile) pass activity; E is non-custodial but has no
    # country, so only B stays: M = {3}.
    inactive = run(ctx, {**body, "walletActivity": "inactive"})
    assert_members(inactive, {"3"}, {B}, 1)


def test_rerun_on_unchanged_data_gives_the_same_result(ctx: Context) -> None:
    seed(
        ctx,
        [passport(str(n), [A, B, C][n % 3], ["x"] if n % 2 else ["y"]) for n in range(1, 31)],
    )
    doc = create(ctx, {"tags": ["x"], "uniqueOwner": True})
    first = rerun(ctx, doc)
    second = rerun(ctx, doc)
    # Odd ids 1..29 carry "x": 15 passports. n % 3 owner: A gets 3, 9.. -> "3";
    # B gets 1, 7.. -> "1"; C gets 5, 11.. -> "5".
    assert first.recipients == second.recipients == {"1", "3", "5"}
    assert first.owners == second.owners == {A, B, C}
    assert first.doc["countNFT"] == second.doc["countNFT"] == 15


# Pure units of worker.audience.rule.


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        (None, None),
        ("", None),
        (ZERO, None),
        ("0X" + "0" * 40, None),
        (42, None),
        ("0x" + "Ab" * 20, "0x" + "ab" * 20),
        (A, A),
    ],
)
def test_real_owner(owner: object, expected: str | None) -> None:
    assert real_owner(owner) == expected


def test_token_sort_key_orders_by_length_then_text() -> None:
    assert sorted(["10", "9", "100", "a", "09"], key=token_sort_key) == [
        "9",
        "a",
        "09",
        "10",
        "100",
    ]
    assert min(["10", "9", "100"], key=token_sort_key) == "9"


def test_owner_rule_treats_missing_profile_as_non_custodial_without_country_or_activity() -> None:
    since = AS_OF - timedelta(days=1)
    assert OwnerRule("no", frozenset(), None, "active").admits(None)
    assert not OwnerRule("yes", frozenset(), None, "active").admits(None)
    assert not OwnerRule("all", frozenset({"France"}), None, "active").admits(None)
    assert not OwnerRule("all", frozenset(), since, "active").admits(None)
    assert OwnerRule("all", frozenset(), since, "inactive").admits(None)
    assert OwnerRule("all", frozenset(), since, "all").admits(None)


def test_owner_rule_activity_boundary() -> None:
    since = AS_OF - timedelta(days=10)
    active = OwnerRule("all", frozenset(), since, "active")
    inactive = OwnerRule("all", frozenset(), since, "inactive")
    at_since = {"custodial": False, "country": None, "lastActiveAt": since}
    before = {**at_since, "lastActiveAt": since - timedelta(microseconds=1)}
    # pymongo without tz_aware hands back naive UTC datetimes: same instant.
    naive = {**at_since, "lastActiveAt": since.replace(tzinfo=None)}
    assert active.admits(at_since) and not inactive.admits(at_since)
    assert not active.admits(before) and inactive.admits(before)
    assert active.admits(naive)


def test_rule_from_document_defaults_and_owner_rule_instant() -> None:
    rule = Rule.from_document({"brandId": BRAND})
    assert rule.tag_rule == "or"
    assert rule.custodial == "all"
    assert rule.activity == "active"
    assert not rule.unique_owner
    assert rule.owner_rule(AS_OF).is_open
    assert rule.owner_rule(AS_OF).active_since is None
    zero = Rule.from_document({"brandId": BRAND, "isWalletActiveSinceNumberOfDays": 0})
    assert zero.owner_rule(AS_OF).active_since is None
    ten = Rule.from_document({"brandId": BRAND, "isWalletActiveSinceNumberOfDays": 10})
    assert ten.owner_rule(AS_OF).active_since == datetime(2022, 10, 10, tzinfo=UTC)


def test_rule_passport_admits() -> None:
    base = {"brandId": BRAND, "tags": ["a", "b"]}
    both = {"tokenId": "1", "productId": "p", "tags": ["a", "b"]}
    only_a = {"tokenId": "2", "productId": "q", "tags": ["a"]}
    any_rule = Rule.from_document({**base, "tagRule": "any"})
    all_rule = Rule.from_document({**base, "tagRule": "all"})
    assert any_rule.passport_admits(both) and any_rule.passport_admits(only_a)
    assert all_rule.passport_admits(both) and not all_rule.passport_admits(only_a)
    tokens = Rule.from_document({**base, "tagRule": "tokenIds", "tokenIds": ["2"]})
    assert tokens.passport_admits(only_a) and not tokens.passport_admits(both)
    products = Rule.from_document({**base, "tagRule": "productIds", "productIds": ["p"]})
    assert products.passport_admits(both) and not products.passport_admits(only_a)
