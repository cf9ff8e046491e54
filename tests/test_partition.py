"""A partitioned run publishes exactly what one task publishes, whatever order parts run in."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import ObjectId

from worker import messages
from worker.audience.fields import AudienceCreate
from worker.audience.rule import Rule
from worker.bench import synthetic
from worker.errors import InvalidMessage
from worker.materialize.evaluate import scan_key
from worker.materialize.partition import Part, run_part, split_points
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences

AS_OF = datetime(2022, 10, 20, tzinfo=UTC)
SIZE = 2_000
PART = 300  # 2,000 passports in owner ranges of about 300


def _insert(ctx: Context, body: dict[str, Any]) -> Any:
    fields = AudienceCreate.model_validate({"name": "n", **body}).stored()
    doc = audiences.new_document(synthetic.BRAND, fields, AS_OF)
    audiences.insert(ctx.stores.audiences, doc)
    return doc["_id"]


def _published(ctx: Context, audience_id: Any) -> tuple[set[str], set[str], dict[str, str]]:
    base = f"{ctx.settings.key_prefix}:{{{audience_id}}}"
    return (
        ctx.redis.smembers(f"{base}:recipients"),
        ctx.redis.smembers(f"{base}:owners"),
        ctx.redis.hgetall(f"{base}:meta"),
    )


def _partitioned(ctx: Context, sent: list[Part], owner_first: str = "passports") -> Context:
    # Passports first unless told otherwise: only runs that read passports first are split.
    update = {"partition_size": PART, "owner_first": owner_first}
    settings = ctx.settings.model_copy(update=update)
    return Context(settings, ctx.stores, ctx.redis, send_parts=sent.extend)


@pytest.fixture
def brand(ctx: Context) -> Context:
    synthetic.load(ctx.stores, SIZE)
    return ctx


def test_cuts_split_the_brand_into_owner_ranges_of_about_the_given_size(brand: Context) -> None:
    # Worked out from the generator (every passport has a real owner): passports in (owner,
    # tokenId) order, and a cut at the owner of every PART-th passport counted from just past
    # the previous cut's owner.
    ordered = sorted(
        (p["owner"], p["tokenId"]) for batch in synthetic.passports(SIZE) for p in batch
    )
    expected: list[str] = []
    rest = ordered
    while len(rest) >= PART:
        cut = rest[PART - 1][0]
        rest = [pair for pair in rest if pair[0] > cut]
        if rest:
            expected.append(cut)
    cuts = split_points(brand.stores.passports, synthetic.BRAND, PART, "owner")
    assert cuts == expected and len(cuts) >= 5
    assert split_points(brand.stores.passports, synthetic.BRAND, SIZE, "owner") == []


def test_a_rule_that_reads_no_profile_is_cut_by_token_id(brand: Context) -> None:
    tokens = sorted(str(n) for n in range(SIZE))  # the scan's order: text, not number
    cuts = split_points(brand.stores.passports, synthetic.BRAND, PART, "tokenId")
    assert cuts == [tokens[i] for i in range(PART - 1, SIZE - 1, PART)]
    assert scan_key(Rule.from_document({"brandId": "b", "uniqueOwner": True})) == "tokenId"
    assert scan_key(Rule.from_document({"brandId": "b", "countries": ["Japan"]})) == "owner"


@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["tag-00", "tag-01"], "tagRule": "or"},
        {"tagRule": "productIds", "productIds": synthetic.PRODUCTS[:40]},
        {"countries": "Japan", "custodialWallet": "yes"},
        {"isWalletActiveSinceNumberOfDays": 365, "walletActivity": "inactive"},
        {"uniqueOwner": True},
        {"uniqueOwner": True, "custodialWallet": "no", "tags": ["tag-02"], "tagRule": "or"},
    ],
)
def test_parts_in_any_order_publish_what_one_task_does(
    brand: Context, body: dict[str, Any]
) -> None:
    whole_id = _insert(brand, body)
    whole = materialize(brand, Request(whole_id, as_of=AS_OF))
    assert whole.status == "done"

    sent: list[Part] = []
    split_id = _insert(brand, body)
    started = materialize(_partitioned(brand, sent), Request(split_id, as_of=AS_OF))
    assert started.status == "partitioned"
    key = scan_key(Rule.from_document(audiences.load(brand.stores.audiences, split_id) or {}))
    cuts = split_points(brand.stores.passports, synthetic.BRAND, PART, key)
    assert len(sent) == len(cuts) + 1
    random.Random(5).shuffle(sent)
    statuses = [run_part(brand, part).status for part in sent]
    assert statuses == ["part_done"] * len(cuts) + ["done"]

    ours, theirs = _published(brand, split_id), _published(brand, whole_id)
    assert ours[0] == theirs[0] and ours[1] == theirs[1]
    for field in ("countNFT", "countOwner", "recipients"):
        assert ours[2][field] == theirs[2][field]
    doc = audiences.load(brand.stores.audiences, split_id)
    assert doc is not None
    assert doc["countNFT"] == whole.count_nft and doc["countOwner"] == whole.count_owner
    assert doc["materialization"]["state"] == "ready"


def test_a_part_delivered_twice_counts_once(brand: Context) -> None:
    sent: list[Part] = []
    audience_id = _insert(brand, {"tags": ["tag-00"], "tagRule": "or"})
    materialize(_partitioned(brand, sent), Request(audience_id, as_of=AS_OF))
    first, *rest = sent
    assert run_part(brand, first).status == "part_done"
    assert run_part(brand, first).status == "part_done"
    assert [run_part(brand, part).status for part in rest][-1] == "done"
    assert run_part(brand, first).status == "moot"

    recipients, _, meta = _published(brand, audience_id)
    # Independent count: every passport holding tag-00, each with an owner in the generator.
    expected = {p["tokenId"] for b in synthetic.passports(SIZE) for p in b if "tag-00" in p["tags"]}
    assert recipients == expected
    assert int(meta["countNFT"]) == len(expected)


def test_parts_of_a_superseded_run_change_nothing(brand: Context) -> None:
    sent: list[Part] = []
    audience_id = _insert(brand, {"tags": ["tag-00"], "tagRule": "or"})
    materialize(_partitioned(brand, sent), Request(audience_id, as_of=AS_OF))
    brand.stores.audiences.update_one({"_id": audience_id}, {"$inc": {"revision": 1}})

    assert {run_part(brand, part).status for part in sent} == {"superseded"}
    assert _published(brand, audience_id)[0] == set()


def test_a_part_message_round_trips_and_bad_ones_are_refused() -> None:
    part = Part(ObjectId("0123456789abcdef01234567"), "a" * 32, 3, 2, AS_OF, 1, 4, "10", None)
    assert messages.part_request(**messages.part_message(part)) == part
    for bad in ({"index": 4}, {"parts": 1}, {"run_id": "x"}, {"seq": True}, {"after": 7}):
        with pytest.raises(InvalidMessage):
            messages.part_request(**(messages.part_message(part) | bad))
    with pytest.raises(InvalidMessage):
        messages.part_request(**messages.part_message(replace(part, index=0)) | {"as_of": None})


def test_a_part_renews_the_runs_lease(brand: Context) -> None:
    sent: list[Part] = []
    audience_id = _insert(brand, {"tags": ["tag-00"], "tagRule": "or"})
    materialize(_partitioned(brand, sent), Request(audience_id, as_of=AS_OF))
    lapsed = {"$set": {"materialization.leaseUntilMs": 0}}
    brand.stores.audiences.update_one({"_id": audience_id}, lapsed)

    before_ms = int(time.time() * 1000)
    assert run_part(brand, sent[0]).status == "part_done"
    state = (audiences.load(brand.stores.audiences, audience_id) or {})["materialization"]
    # Renewed for LEASE_S from when the part started, so refresh does not take it for stuck.
    assert state["leaseUntilMs"] >= before_ms + brand.settings.lease_s * 1000


def test_a_run_that_reads_the_few_matching_wallets_first_is_not_split(brand: Context) -> None:
    # About 600 wallets, 40 % custodial, one in eight in Japan: some 30 match, far fewer
    # than the 2,000 passports over the ratio of 4, so auto reads the wallets first.
    sent: list[Part] = []
    audience_id = _insert(brand, {"countries": "Japan", "custodialWallet": "yes"})
    ctx = _partitioned(brand, sent, owner_first="auto")
    outcome = materialize(ctx, Request(audience_id, as_of=AS_OF))
    assert (outcome.status, sent) == ("done", [])
    assert outcome.passports_read < SIZE // 10


def test_a_cut_is_never_a_burned_owner(ctx: Context) -> None:
    burned = [{"brandId": "b", "tokenId": f"x{n}", "owner": None} for n in range(6)]
    owned = [{"brandId": "b", "tokenId": f"y{n}", "owner": f"0x{n:040x}"} for n in range(1, 7)]
    ctx.stores.passports.insert_many(burned + owned)
    # Null owners sort first: the 4th passport is burned, so no range is cut there.
    assert split_points(ctx.stores.passports, "b", 4, "owner") == []
    # The 8th passport is the second real owner's; five real owners follow it.
    assert split_points(ctx.stores.passports, "b", 8, "owner") == [f"0x{2:040x}"]
