"""The worker against a deliberately simple, independent evaluator, over the real data.

The evaluator below reads ../shared/data/real with `json` and applies contract section 4 with
plain sets and loops; it shares no code with the product. Many seeded random audiences across
both brands are materialized by the real core and compared with it exactly: countNFT,
countOwner, the owner set and the recipient set in Redis.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.audience.fields import AudienceCreate
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
AS_OF = datetime(2022, 10, 20, tzinfo=UTC)
BRANDS = ("cryptopunks", "poap-devcon")
ZERO = "0x" + "0" * 40
SEED = 20221020
N_RANDOM = 60


# The independent evaluator.


@dataclass(frozen=True)
class Wallet:
    custodial: bool
    country: str | None
    last_active: datetime | None


@dataclass(frozen=True)
class Truth:
    passports: list[dict[str, Any]]
    wallets: dict[str, Wallet]


def load_truth() -> Truth:
    passports = []
    with (REAL / "passports.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                passports.append(json.loads(line))
    wallets = {}
    with (REAL / "wallets.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            seen = row.get("lastActiveAt")
            last = datetime.fromisoformat(seen.replace("Z", "+00:00")) if seen else None
            wallets[row["address"].lower()] = Wallet(
                bool(row.get("custodial")), row.get("country"), last
            )
    return Truth(passports, wallets)


TRUTH = load_truth()


def owner_of(passport: dict[str, Any]) -> str | None:
    owner = passport.get("owner")
    if not isinstance(owner, str):
        return None
    owner = owner.lower()
    if owner == "" or owner == ZERO:
        return None
    return owner


def passes_passport_rule(passport: dict[str, Any], body: dict[str, Any]) -> bool:
    rule = body.get("tagRule", "or")
    tags = set(body.get("tags", []))
    held = set(passport.get("tags") or [])
    if rule == "tokenIds":
        return passport["tokenId"] in set(body["tokenIds"])
    if rule == "productIds":
        return passport.get("productId") in set(body["productIds"])
    if not tags:
        return True
    if rule in ("and", "all"):
        return all(tag in held for tag in tags)
    return any(tag in held for tag in tags)


def passes_owner_rule(owner: str, body: dict[str, Any], as_of: datetime) -> bool:
    # No profile: non-custodial, no country, no recorded activity.
    wallet = TRUTH.wallets.get(owner, Wallet(False, None, None))
    custodial = body.get("custodialWallet", "all")
    if custodial == "yes" and not wallet.custodial:
        return False
    if custodial == "no" and wallet.custodial:
        return False
    countries = body.get("countries", [])
    if countries and wallet.country not in countries:
        return False
    days = body.get("isWalletActiveSinceNumberOfDays")
    activity = body.get("walletActivity", "active")
    if days:
        since = as_of - timedelta(hours=24 * days)
        recent = wallet.last_active is not None and wallet.last_active >= since
        if activity == "active" and not recent:
            return False
        if activity == "inactive" and recent:
            return False
    return True


def evaluate(brand: str, body: dict[str, Any], as_of: datetime) -> tuple[int, set[str], set[str]]:
    """(countNFT, owners, recipients) of one audience, straight from the contract."""
    members = []
    for passport in TRUTH.passports:
        if passport["brandId"] != brand:
            continue
        owner = owner_of(passport)
        if owner is None:
            continue
        if passes_passport_rule(passport, body) and passes_owner_rule(owner, body, as_of):
            members.append((passport["tokenId"], owner))
    owners = {owner for _, owner in members}
    if not body.get("uniqueOwner"):
        return len(members), owners, {token for token, _ in members}
    first: dict[str, str] = {}
    for token, owner in members:
        best = first.get(owner)
        if best is None or len(token) < len(best) or (len(token) == len(best) and token < best):
            first[owner] = token
    return len(members), owners, set(first.values())


# Random audiences, drawn from the data.


def brand_facts(brand: str) -> dict[str, list[str]]:
    mine = [p for p in TRUTH.passports if p["brandId"] == brand]
    return {
        # A blank tag (three passports carry one) cannot be asked for: it is a 400.
        "tags": sorted({tag for p in mine for tag in p.get("tags") or [] if tag.strip()}),
        "products": sorted({p["productId"] for p in mine if p.get("productId")}),
        "tokens": sorted(p["tokenId"] for p in mine),
        "burned": sorted(p["tokenId"] for p in mine if owner_of(p) is None),
    }


FACTS = {brand: brand_facts(brand) for brand in BRANDS}
COUNTRIES = sorted({w.country for w in TRUTH.wallets.values() if w.country})


def passport_part(rng: random.Random, brand: str) -> dict[str, Any]:
    facts = FACTS[brand]
    other = FACTS[BRANDS[1 - BRANDS.index(brand)]]
    rule = rng.choice(["or", "any", "and", "all", "tokenIds", "productIds"])
    body: dict[str, Any] = {"tagRule": rule}
    if rule in ("or", "any"):
        if facts["tags"]:
            body["tags"] = rng.sample(facts["tags"], rng.choice([0, 1, 1, 2, 3]))
        else:  # poap-devcon has no tags: now and then ask for one it lacks
            body["tags"] = rng.sample(other["tags"], rng.choice([0, 0, 0, 1]))
    elif rule in ("and", "all"):
        # The tags of one real passport, so that "all" usually keeps somebody.
        holder = rng.choice([p for p in TRUTH.passports if p["brandId"] == brand])
        held = [tag for tag in holder.get("tags") or [] if tag.strip()]
        body["tags"] = rng.sample(held, rng.randint(0, min(2, len(held))))
    elif rule == "tokenIds":
        tokens = rng.sample(facts["tokens"], rng.randint(1, 400))
        tokens += rng.sample(facts["burned"], min(1, len(facts["burned"])))
        tokens += [rng.choice(other["tokens"]), "99999999999"]
        body["tokenIds"] = tokens
        body["tags"] = rng.sample(facts["tags"] or other["tags"], 1)  # ignored by tokenIds
    else:
        size = rng.randint(1, min(4, len(facts["products"])))
        body["productIds"] = [*rng.sample(facts["products"], size), "no-such"]
    return body


def owner_part(rng: random.Random, n: int) -> dict[str, Any]:
    # Each owner filter thins the result a lot on this data: apply a random few of them.
    applied = rng.sample(["custodial", "countries", "activity"], rng.choice([0, 1, 1, 2, 2, 3]))
    body: dict[str, Any] = {
        "custodialWallet": rng.choice(["yes", "no"]) if "custodial" in applied else "all",
        "uniqueOwner": rng.random() < 0.5,
        "walletActivity": rng.choice(["active", "inactive", "all"]),
    }
    if "activity" in applied:
        body["isWalletActiveSinceNumberOfDays"] = rng.choice([1, 7, 30, 95, 123, 365, 1000, 36500])
    elif rng.random() < 0.5:
        body["isWalletActiveSinceNumberOfDays"] = rng.choice([None, 0])  # no activity rule
    if n % 20 == 7:
        body["countries"] = ["Atlantis"]  # matches no wallet
    elif "countries" in applied and rng.random() < 0.2:
        body["countries"] = ["france", rng.choice(COUNTRIES)]  # lower case matches nothing
    elif "countries" in applied:
        body["countries"] = rng.sample(COUNTRIES, rng.randint(1, 4))
    return body


def random_cases() -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(SEED)
    cases = []
    for n in range(N_RANDOM):
        brand = BRANDS[n % 2]
        cases.append((brand, {**passport_part(rng, brand), **owner_part(rng, n)}))
    return cases


RANDOM_CASES = random_cases()


# Running one audience through the worker.


@dataclass
class Seen:
    count_nft: int
    count_owner: int
    owners: set[str]
    recipients: set[str]
    meta: dict[str, str]


def materialized(ctx: Context, brand: str, body: dict[str, Any]) -> Seen:
    fields = AudienceCreate.model_validate({"name": "crosscheck", **body}).stored()
    doc = audiences.insert(
        ctx.stores.audiences, audiences.new_document(brand, fields, datetime.now(UTC))
    )
    outcome = materialize(ctx, Request(doc["_id"], None, AS_OF))
    assert outcome.status == "done"
    stored = ctx.stores.audiences.find_one({"_id": doc["_id"]})
    assert stored is not None
    assert stored["materialization"]["state"] == "ready"
    assert (outcome.count_nft, outcome.count_owner) == (stored["countNFT"], stored["countOwner"])
    base = f"{ctx.settings.key_prefix}:{{{doc['_id']}}}"
    recipients = {str(m) for m in ctx.redis.smembers(f"{base}:recipients")}
    assert outcome.recipients == len(recipients)
    return Seen(
        stored["countNFT"],
        stored["countOwner"],
        {str(m) for m in ctx.redis.smembers(f"{base}:owners")},
        recipients,
        {str(k): str(v) for k, v in ctx.redis.hgetall(f"{base}:meta").items()},
    )


def check_against_evaluator(ctx: Context, brand: str, body: dict[str, Any]) -> Seen:
    count_nft, owners, recipients = evaluate(brand, body, AS_OF)
    seen = materialized(ctx, brand, body)
    assert seen.count_nft == count_nft
    assert seen.count_owner == len(owners)
    assert seen.meta["countNFT"] == str(count_nft)
    assert seen.meta["countOwner"] == str(len(owners))
    assert seen.owners == owners
    missing, extra = recipients - seen.recipients, seen.recipients - recipients
    assert not missing and not extra, f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
    return seen


# Fixed rows: (brand, body, countNFT, countOwner, recipients) as of 2022-10-20T00:00:00Z.
FIXED = [
    pytest.param(
        "cryptopunks", {"tags": ["Earring"], "tagRule": "or"}, 1631, 1078, 1631, id="earring-or"
    ),
    pytest.param(
        "cryptopunks",
        {"tags": ["Earring", "Cigarette"], "tagRule": "all", "uniqueOwner": True},
        134,
        123,
        123,
        id="earring-cigarette-all-unique",
    ),
    pytest.param(
        "cryptopunks",
        {
            "tagRule": "or",
            "countries": ["France", "Spain"],
            "custodialWallet": "yes",
            "isWalletActiveSinceNumberOfDays": 365,
            "walletActivity": "active",
        },
        201,
        87,
        201,
        id="france-spain-custodial-active-365",
    ),
    pytest.param(
        "poap-devcon",
        {"tagRule": "productIds", "productIds": ["67378", "67695"]},
        111,
        108,
        111,
        id="devcon-two-products",
    ),
]


@pytest.mark.parametrize(("brand", "body", "count_nft", "count_owner", "n_recipients"), FIXED)
def test_fixed_rows(
    real_ctx: Context,
    brand: str,
    body: dict[str, Any],
    count_nft: int,
    count_owner: int,
    n_recipients: int,
) -> None:
    seen = check_against_evaluator(real_ctx, brand, body)
    assert (seen.count_nft, seen.count_owner, len(seen.recipients)) == (
        count_nft,
        count_owner,
        n_recipients,
    )


@pytest.mark.parametrize(("brand", "body", "count_nft", "count_owner", "n_recipients"), FIXED)
def test_evaluator_reproduces_the_fixed_rows(
    brand: str, body: dict[str, Any], count_nft: int, count_owner: int, n_recipients: int
) -> None:
    """The oracle itself agrees with the rows worked out independently of both."""
    nft, owners, recipients = evaluate(brand, body, AS_OF)
    assert (nft, len(owners), len(recipients)) == (count_nft, count_owner, n_recipients)


def test_random_cases_cover_the_rule_space() -> None:
    """The generator really draws every alias, option and both kinds of empty result."""
    bodies = [body for _, body in RANDOM_CASES]
    assert {b["tagRule"] for b in bodies} == {"or", "any", "and", "all", "tokenIds", "productIds"}
    assert {b["custodialWallet"] for b in bodies} == {"yes", "no", "all"}
    assert {b["walletActivity"] for b in bodies} == {"active", "inactive", "all"}
    assert {b["uniqueOwner"] for b in bodies} == {True, False}
    assert any(b.get("countries") == ["Atlantis"] for b in bodies)
    assert any(b.get("isWalletActiveSinceNumberOfDays") for b in bodies)
    assert any(b.get("isWalletActiveSinceNumberOfDays") == 0 for b in bodies)
    sizes = [evaluate(brand, body, AS_OF)[0] for brand, body in RANDOM_CASES]
    assert sum(size == 0 for size in sizes) >= 3
    assert sum(size >= 100 for size in sizes) >= 10


@pytest.mark.parametrize(
    ("brand", "body"),
    [
        pytest.param(brand, body, id=f"{n:02d}-{brand}")
        for n, (brand, body) in enumerate(RANDOM_CASES)
    ],
)
def test_random_audience_matches_the_evaluator(
    real_ctx: Context, brand: str, body: dict[str, Any]
) -> None:
    check_against_evaluator(real_ctx, brand, body)


@pytest.mark.parametrize("activity", ["active", "inactive"])
def test_activity_boundary_on_real_data(real_ctx: Context, activity: str) -> None:
    """123 days before T, 70 cryptopunks sit on wallets last active at exactly S: they are
    active, not inactive."""
    since = AS_OF - timedelta(days=123)
    on_edge = {a for a, w in TRUTH.wallets.items() if w.last_active == since}
    edge_tokens = {
        p["tokenId"]
        for p in TRUTH.passports
        if p["brandId"] == "cryptopunks" and owner_of(p) in on_edge
    }
    assert len(edge_tokens) == 70
    body = {"isWalletActiveSinceNumberOfDays": 123, "walletActivity": activity}
    seen = check_against_evaluator(real_ctx, "cryptopunks", body)
    if activity == "active":
        assert edge_tokens <= seen.recipients
    else:
        assert not edge_tokens & seen.recipients
