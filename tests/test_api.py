"""The HTTP API against the contract: fields (section 3), endpoints and errors (section 5).

The app runs in process over the test's own store database and Redis key prefix. The task
queue is replaced by a recording publisher, the project's own boundary; materializations the
recipients endpoint needs are made by calling the real core directly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId
from fastapi.testclient import TestClient

from api_stub.app import create_app
from api_stub.backend import Backend
from worker.materialize.run import Context, Request, materialize

AUTH = {"a": "Bearer key-a", "b": "Bearer key-b"}
INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
OBJECT_ID = re.compile(r"[0-9a-f]{24}")
MIB = 1024 * 1024
ZERO = "0x" + "0" * 40
OWNER_A = "0x" + "a" * 40
OWNER_B = "0x" + "b" * 40
PENDING = {"state": "pending", "revision": None, "evaluatedAt": None, "durationMs": None}
DEFAULT_FIELDS: dict[str, Any] = {
    "tagRule": "or",
    "tags": [],
    "tokenIds": [],
    "productIds": [],
    "uniqueOwner": False,
    "custodialWallet": "all",
    "isWalletActiveSinceNumberOfDays": None,
    "walletActivity": "active",
    "countries": [],
}
SEED_CREATE = {
    "name": "Audience test",
    "tagRule": "all",
    "tags": "test",
    "uniqueOwner": False,
    "custodialWallet": "yes",
    "isWalletActiveSinceNumberOfDays": 30,
    "countries": ["France", "Spain"],
}
# The seed's fetched document, minus `_id`, `createdAt` and `updatedAt`, sent as a create body.
SEED_FETCHED = {
    "name": "name",
    "tags": [],
    "description": "this is the description",
    "uniqueOwner": True,
    "tagRule": "tokenIds",
    "isWalletActiveSinceNumberOfDays": 30,
    "custodialWallet": "all",
    "countries": ["France", "Middle-earth", "Taiwan", "Belgium"],
    "walletActivity": "inactive",
    "tokenIds": {"type": "Buffer", "data": [51, 52, 51]},
}
SEED_UPDATE = {"name": "Brand A Campaign", "tagRule": "all", "uniqueOwner": True}


class RecordingPublisher:
    """Stands in for the Celery publisher and remembers every request to materialize."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str | None]] = []

    def materialize(self, audience_id: str, revision: int, as_of: str | None = None) -> bool:
        self.calls.append((audience_id, revision, as_of))
        return True


@dataclass
class Api:
    client: TestClient
    publisher: RecordingPublisher
    ctx: Context

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        brand: str = "a",
        content: Any = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": AUTH[brand], "Content-Type": "application/json"}
        if body is not None:
            content = json.dumps(body)
        return self.client.request(method, path, content=content, headers=headers, params=params)

    def create(self, body: Any, *, brand: str = "a", **params: str) -> httpx.Response:
        return self.call("POST", "/audience/create", body, brand=brand, params=params)

    def created(self, body: Any, *, brand: str = "a") -> dict[str, Any]:
        response = self.create(body, brand=brand)
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc

    def get(self, audience_id: str, *, brand: str = "a") -> httpx.Response:
        return self.call("GET", f"/audience/{audience_id}", brand=brand)

    def patch(self, audience_id: str, body: Any, *, brand: str = "a", **params: str):
        path = f"/audience/{audience_id}"
        return self.call("PATCH", path, body, brand=brand, params=params)

    def recipients(self, audience_id: str, *, brand: str = "a", **params: str):
        path = f"/audience/{audience_id}/recipients"
        return self.call("GET", path, brand=brand, params=params)

    def listed(self, *, brand: str = "a") -> list[dict[str, Any]]:
        response = self.call("GET", "/audience/list", brand=brand)
        assert response.status_code == 200, response.text
        docs: list[dict[str, Any]] = response.json()
        return docs

    def materialize(self, audience_id: str) -> None:
        # As the worker would once the edits have settled.
        settled = Context(
            self.ctx.settings.model_copy(update={"settle_ms": 0}), self.ctx.stores, self.ctx.redis
        )
        outcome = materialize(settled, Request(ObjectId(audience_id), None, None))
        assert outcome.status == "done", outcome

    def keys(self, audience_id: str) -> list[str]:
        base = f"{self.ctx.settings.key_prefix}:{{{audience_id}}}"
        return [f"{base}:recipients", f"{base}:owners", f"{base}:meta"]


@pytest.fixture
def api(ctx: Context) -> Iterator[Api]:
    publisher = RecordingPublisher()
    backend = Backend(ctx.settings, ctx.stores.audiences, ctx.redis, publisher)
    with TestClient(create_app(backend=backend), raise_server_exceptions=False) as client:
        yield Api(client, publisher, ctx)


def passport(token_id: str, owner: str | None, *tags: str, **extra: Any) -> dict[str, Any]:
    doc = {"brandId": "brand-a", "tokenId": token_id, "productId": None, "tags": list(tags)}
    return {**doc, "owner": owner, **extra}


def expected_document(doc: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """What the contract says a fresh audience of brand-a with `fields` looks like; the id and
    the two instants are taken from `doc` (checked separately)."""
    return {
        "_id": doc["_id"],
        "brandId": "brand-a",
        **DEFAULT_FIELDS,
        **fields,
        "createdAt": doc["createdAt"],
        "updatedAt": doc["updatedAt"],
        "__v": 0,
        "revision": 1,
        "countNFT": None,
        "countOwner": None,
        "materialization": {**PENDING, "error": None},
    }


def now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def instant(text: str) -> datetime:
    assert INSTANT.fullmatch(text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_rejected(response: httpx.Response, param: str, location: str = "body") -> dict:
    """A 400 in the contract's shape, naming `param` at `location`; returns that error."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert list(body) == ["errors"]
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"value", "msg", "param", "location"}
        assert isinstance(error["msg"], str) and error["msg"]
        assert error["location"] in ("body", "params", "query")
    named = [e for e in body["errors"] if e["param"] == param and e["location"] == location]
    assert named, body
    error: dict = named[0]
    return error


def assert_nothing_stored(api: Api) -> None:
    assert api.listed() == []
    assert api.publisher.calls == []


# Create: the document, its defaults and every accepted form of every field.


def test_create_returns_the_contract_document_and_publishes_revision_1(api: Api) -> None:
    before = now_ms()
    response = api.create({"name": "n"})
    after = datetime.now(UTC)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert OBJECT_ID.fullmatch(doc["_id"])
    assert before <= instant(doc["createdAt"]) <= after
    assert before <= instant(doc["updatedAt"]) <= after
    assert doc == expected_document(doc, name="n")
    assert "description" not in doc
    assert len(api.publisher.calls) == 1
    assert api.publisher.calls[0][:2] == (doc["_id"], 1)


def test_created_document_is_what_get_and_list_return(api: Api) -> None:
    doc = api.created({"name": "n", "tags": "gold", "description": "d"})
    fetched = api.get(doc["_id"])
    assert fetched.status_code == 200
    assert fetched.json() == doc
    assert api.listed() == [doc]


ACCEPTED: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"tags": "gold"}, {"tags": ["gold"]}),
    ({"tags": [" gold ", "silver\t"]}, {"tags": ["gold", "silver"]}),
    ({"tags": ["x" * 200]}, {"tags": ["x" * 200]}),
    ({"countries": "France|Spain"}, {"countries": ["France", "Spain"]}),
    ({"countries": " France | Middle-earth "}, {"countries": ["France", "Middle-earth"]}),
    ({"countries": "Taiwan"}, {"countries": ["Taiwan"]}),
    ({"countries": ["France", " Spain "]}, {"countries": ["France", "Spain"]}),
    ({"tokenIds": ["1", 2, " 3 "]}, {"tokenIds": ["1", "2", "3"]}),
    ({"tokenIds": [0, 12345678901234567890]}, {"tokenIds": ["0", "12345678901234567890"]}),
    ({"tokenIds": "1, 2 ,3"}, {"tokenIds": ["1", "2", "3"]}),
    ({"tokenIds": "42"}, {"tokenIds": ["42"]}),
    ({"tokenIds": {"type": "Buffer", "data": [51, 52, 51]}}, {"tokenIds": ["343"]}),
    # "12, 34" as bytes.
    (
        {"tokenIds": {"type": "Buffer", "data": [49, 50, 44, 32, 51, 52]}},
        {"tokenIds": ["12", "34"]},
    ),
    ({"productIds": "SN12345"}, {"productIds": ["SN12345"]}),
    ({"productIds": [" SN1 ", "SN2"]}, {"productIds": ["SN1", "SN2"]}),
    ({"tagRule": "or"}, {"tagRule": "or"}),
    ({"tagRule": "any"}, {"tagRule": "any"}),
    ({"tagRule": "and"}, {"tagRule": "and"}),
    ({"tagRule": "all"}, {"tagRule": "all"}),
    ({"tagRule": "tokenIds", "tokenIds": "7"}, {"tagRule": "tokenIds", "tokenIds": ["7"]}),
    ({"tagRule": "productIds", "productIds": "P"}, {"tagRule": "productIds", "productIds": ["P"]}),
    ({"uniqueOwner": True}, {"uniqueOwner": True}),
    ({"uniqueOwner": False}, {"uniqueOwner": False}),
    ({"custodialWallet": "yes"}, {"custodialWallet": "yes"}),
    ({"custodialWallet": "no"}, {"custodialWallet": "no"}),
    ({"custodialWallet": "all"}, {"custodialWallet": "all"}),
    ({"walletActivity": "active"}, {"walletActivity": "active"}),
    ({"walletActivity": "inactive"}, {"walletActivity": "inactive"}),
    ({"walletActivity": "all"}, {"walletActivity": "all"}),
    ({"isWalletActiveSinceNumberOfDays": 0}, {"isWalletActiveSinceNumberOfDays": 0}),
    ({"isWalletActiveSinceNumberOfDays": 30}, {"isWalletActiveSinceNumberOfDays": 30}),
    ({"isWalletActiveSinceNumberOfDays": 36500}, {"isWalletActiveSinceNumberOfDays": 36500}),
    ({"isWalletActiveSinceNumberOfDays": None}, {"isWalletActiveSinceNumberOfDays": None}),
    ({"description": ""}, {"description": ""}),
    ({"description": "d" * 2000}, {"description": "d" * 2000}),
    ({"name": "  padded name \n"}, {"name": "padded name"}),
    ({"name": "n" * 200}, {"name": "n" * 200}),
    ({"name": "  " + "n" * 200 + "  "}, {"name": "n" * 200}),
]


@pytest.mark.parametrize(("sent", "stored"), ACCEPTED, ids=lambda v: json.dumps(v)[:60])
def test_create_accepts_each_form_and_stores_it_normalized(
    api: Api, sent: dict[str, Any], stored: dict[str, Any]
) -> None:
    doc = api.created({"name": "n", **sent})
    assert doc == expected_document(doc, **{"name": "n", **stored})
    assert api.get(doc["_id"]).json() == doc


def test_create_accepts_10000_items_per_list(api: Api) -> None:
    tags = [f"t{i}" for i in range(10_000)]
    tokens = ",".join(str(i) for i in range(10_000))
    doc = api.created({"name": "n", "tags": tags, "tokenIds": tokens, "countries": tags})
    assert doc["tags"] == tags
    assert doc["countries"] == tags
    assert doc["tokenIds"] == [str(i) for i in range(10_000)]


def test_seed_create_example_is_accepted(api: Api) -> None:
    doc = api.created(SEED_CREATE)
    assert doc == expected_document(
        doc,
        name="Audience test",
        tagRule="all",
        tags=["test"],
        uniqueOwner=False,
        custodialWallet="yes",
        isWalletActiveSinceNumberOfDays=30,
        countries=["France", "Spain"],
    )
    assert api.publisher.calls[0][:2] == (doc["_id"], 1)


def test_seed_fetched_document_is_accepted_as_a_create_body(api: Api) -> None:
    doc = api.created(SEED_FETCHED)
    assert doc == expected_document(
        doc,
        name="name",
        tags=[],
        description="this is the description",
        uniqueOwner=True,
        tagRule="tokenIds",
        isWalletActiveSinceNumberOfDays=30,
        custodialWallet="all",
        countries=["France", "Middle-earth", "Taiwan", "Belgium"],
        walletActivity="inactive",
        tokenIds=["343"],
    )


@pytest.mark.parametrize(
    ("as_of", "normalized"),
    [
        ("2024-04-05T15:18:28.777+02:00", "2024-04-05T13:18:28.777Z"),
        ("2024-04-05T13:18:28Z", "2024-04-05T13:18:28.000Z"),
        ("2024-04-05T13:18:28.5-01:30", "2024-04-05T14:48:28.500Z"),
    ],
)
def test_create_passes_as_of_to_the_publisher_normalized(
    api: Api, as_of: str, normalized: str
) -> None:
    response = api.create({"name": "n"}, asOf=as_of)
    assert response.status_code == 200, response.text
    assert api.publisher.calls == [(response.json()["_id"], 1, normalized)]


@pytest.mark.parametrize("as_of", ["yesterday", "2024-02-30T00:00:00Z", "2024-04-05T25:00:00Z"])
def test_create_with_a_bad_as_of_is_a_query_400_and_stores_nothing(api: Api, as_of: str) -> None:
    error = assert_rejected(api.create({"name": "n"}, asOf=as_of), "asOf", "query")
    assert error["value"] == as_of
    assert_nothing_stored(api)


def test_as_of_far_in_the_past_is_normalized_or_rejected(api: Api) -> None:
    response = api.create({"name": "n"}, asOf="0001-01-01T00:00:00Z")
    if response.status_code == 400:
        assert_rejected(response, "asOf", "query")
        return
    assert response.status_code == 200, response.text
    assert api.publisher.calls[0][2] == "0001-01-01T00:00:00.000Z"


# Create: rejected bodies.

TOO_MANY = [f"t{i}" for i in range(10_001)]
REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"name": "n", "colour": "red"}, "colour"),
    ({"name": "n", "$where": "1 == 1"}, "$where"),
    ({"name": "n", "$set": {"brandId": "brand-b"}}, "$set"),
    ({"name": "n", "tags.0": "x"}, "tags.0"),
    ({"name": "n", "a.b": 1}, "a.b"),
    ({"name": "n", "brandId": "brand-b"}, "brandId"),
    ({"name": "n", "revision": 7}, "revision"),
    ({"name": "n", "uniqueOwner": "true"}, "uniqueOwner"),
    ({"name": "n", "uniqueOwner": 1}, "uniqueOwner"),
    ({"name": "n", "uniqueOwner": None}, "uniqueOwner"),
    ({"name": "n", "isWalletActiveSinceNumberOfDays": 30.5}, "isWalletActiveSinceNumberOfDays"),
    ({"name": "n", "isWalletActiveSinceNumberOfDays": "30"}, "isWalletActiveSinceNumberOfDays"),
    ({"name": "n", "isWalletActiveSinceNumberOfDays": -1}, "isWalletActiveSinceNumberOfDays"),
    ({"name": "n", "isWalletActiveSinceNumberOfDays": 36501}, "isWalletActiveSinceNumberOfDays"),
    ({"name": "n", "isWalletActiveSinceNumberOfDays": True}, "isWalletActiveSinceNumberOfDays"),
    ({"name": "n", "tags": [1]}, "tags"),
    ({"name": "n", "tags": {"gold": 1}}, "tags"),
    ({"name": "n", "tags": None}, "tags"),
    ({"name": "n", "tags": "  "}, "tags"),
    ({"name": "n", "tags": ["a", " "]}, "tags"),
    ({"name": "n", "tags": TOO_MANY}, "tags"),
    ({"name": "n", "tags": ["x" * 201]}, "tags"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 201}, "name"),
    ({"name": 5}, "name"),
    ({"name": None}, "name"),
    ({"tags": ["gold"]}, "name"),
    ({"name": "n", "description": "d" * 2001}, "description"),
    ({"name": "n", "description": 5}, "description"),
    ({"name": "n", "countries": "France||Spain"}, "countries"),
    ({"name": "n", "countries": ["France", ""]}, "countries"),
    ({"name": "n", "countries": "|".join(TOO_MANY)}, "countries"),
    ({"name": "n", "countries": ["x" * 201]}, "countries"),
    ({"name": "n", "countries": 33}, "countries"),
    ({"name": "n", "tokenIds": "1,,2"}, "tokenIds"),
    ({"name": "n", "tokenIds": ",".join(TOO_MANY)}, "tokenIds"),
    ({"name": "n", "tokenIds": TOO_MANY}, "tokenIds"),
    ({"name": "n", "tokenIds": ["1" * 201]}, "tokenIds"),
    ({"name": "n", "tokenIds": [1.5]}, "tokenIds"),
    ({"name": "n", "tokenIds": [True]}, "tokenIds"),
    ({"name": "n", "tokenIds": [None]}, "tokenIds"),
    ({"name": "n", "tokenIds": 343}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Blob", "data": [51]}}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Buffer", "data": [256]}}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Buffer", "data": [-1]}}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Buffer", "data": [255]}}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Buffer", "data": [51, 0xC3]}}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Buffer", "data": "343"}}, "tokenIds"),
    ({"name": "n", "tokenIds": {"type": "Buffer"}}, "tokenIds"),
    # "1,,2" as bytes: an empty item inside a Buffer is as empty as in a string.
    ({"name": "n", "tokenIds": {"type": "Buffer", "data": [49, 44, 44, 50]}}, "tokenIds"),
    ({"name": "n", "productIds": ["P", "  "]}, "productIds"),
    ({"name": "n", "productIds": 5}, "productIds"),
    ({"name": "n", "productIds": ["p" * 201]}, "productIds"),
    ({"name": "n", "tagRule": "xor"}, "tagRule"),
    ({"name": "n", "tagRule": None}, "tagRule"),
    ({"name": "n", "custodialWallet": "maybe"}, "custodialWallet"),
    ({"name": "n", "custodialWallet": True}, "custodialWallet"),
    ({"name": "n", "walletActivity": "sometimes"}, "walletActivity"),
]


def _case_id(case: Any) -> str:
    return json.dumps(case)[:50] if isinstance(case, dict) else str(case)


@pytest.mark.parametrize(("body", "param"), REJECTED, ids=_case_id)
def test_create_rejects_with_a_400_naming_the_param(api: Api, body: dict, param: str) -> None:
    error = assert_rejected(api.create(body), param)
    if param in body:
        assert error["value"] == body[param]
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n", "tagRule": "tokenIds"},
        {"name": "n", "tagRule": "tokenIds", "tokenIds": []},
        {"name": "n", "tagRule": "tokenIds", "tokenIds": ""},
        {"name": "n", "tagRule": "tokenIds", "tokenIds": {"type": "Buffer", "data": []}},
        {"name": "n", "tagRule": "productIds"},
        {"name": "n", "tagRule": "productIds", "productIds": []},
        {"name": "n", "tagRule": "productIds", "tokenIds": ["1"]},
    ],
    ids=_case_id,
)
def test_id_rules_without_ids_are_rejected(api: Api, body: dict[str, Any]) -> None:
    response = api.create(body)
    assert response.status_code == 400, response.text
    named = {e["param"] for e in response.json()["errors"] if e["location"] == "body"}
    assert named & {"tagRule", body["tagRule"]}, response.text
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    "content",
    [b"{", b"name=n", b"", b"[]", b'[{"name": "n"}]', b"null", b'"n"', b"42", b"\xff\xfe{}"],
    ids=repr,
)
def test_a_body_that_is_not_a_json_object_is_a_400(api: Api, content: bytes) -> None:
    response = api.call("POST", "/audience/create", content=content)
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert errors
    assert all(e["location"] == "body" and isinstance(e["param"], str) for e in errors)
    assert_nothing_stored(api)


def _body_of_size(size: int) -> bytes:
    head, tail = b'{"name": "n", "description": "', b'"}'
    return head + b"d" * (size - len(head) - len(tail)) + tail


def test_a_body_of_exactly_1_mib_is_read_and_judged_on_its_fields(api: Api) -> None:
    body = _body_of_size(MIB)
    assert len(body) == MIB
    assert_rejected(api.call("POST", "/audience/create", content=body), "description")
    assert_nothing_stored(api)


def test_a_body_over_1_mib_is_a_413(api: Api) -> None:
    response = api.call("POST", "/audience/create", content=_body_of_size(MIB + 1))
    assert response.status_code == 413
    assert_nothing_stored(api)


def test_a_chunked_body_over_1_mib_is_a_413(api: Api) -> None:
    body = _body_of_size(2 * MIB)
    chunks = iter([body[:MIB], body[MIB:]])
    response = api.call("POST", "/audience/create", content=chunks)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert_nothing_stored(api)


def test_a_patch_body_over_1_mib_is_a_413_and_changes_nothing(api: Api) -> None:
    doc = api.created({"name": "n"})
    path = f"/audience/{doc['_id']}"
    response = api.call("PATCH", path, content=json.dumps({"description": "d" * MIB}))
    assert response.status_code == 413
    assert api.get(doc["_id"]).json() == doc


# Ids, authentication and brands.

MALFORMED_IDS = ["660ffa248b242638ac6ccac3za", "123", "z" * 24, "660ffa248b242638ac6ccac"]


def _id_calls(api: Api, audience_id: str) -> list[httpx.Response]:
    return [
        api.get(audience_id),
        api.patch(audience_id, {"name": "x"}),
        api.call("DELETE", f"/audience/{audience_id}"),
        api.recipients(audience_id),
    ]


@pytest.mark.parametrize("bad_id", MALFORMED_IDS)
def test_a_malformed_id_is_a_params_400_on_every_route(api: Api, bad_id: str) -> None:
    for response in _id_calls(api, bad_id):
        error = assert_rejected(response, "audienceId", "params")
        assert "mongoId" in error["msg"]
        assert error["value"] == bad_id
    assert_nothing_stored(api)


def test_an_unknown_id_is_a_404_on_every_route(api: Api) -> None:
    for response in _id_calls(api, str(ObjectId())):
        assert response.status_code == 404, response.request
        assert response.json() == {"error": "audience not found"}
    assert api.publisher.calls == []


def test_another_brands_audience_does_not_exist_for_the_caller(api: Api) -> None:
    api.ctx.stores.passports.insert_one(passport("1", OWNER_A, "gold"))
    doc = api.created({"name": "n"})
    api.materialize(doc["_id"])
    before = api.get(doc["_id"]).json()
    calls = list(api.publisher.calls)
    attempts = [
        api.get(doc["_id"], brand="b"),
        api.patch(doc["_id"], {"name": "taken", "tags": "x"}, brand="b"),
        api.call("DELETE", f"/audience/{doc['_id']}", brand="b"),
        api.recipients(doc["_id"], brand="b"),
    ]
    for response in attempts:
        assert response.status_code == 404, response.request
        assert response.json() == {"error": "audience not found"}
    assert api.get(doc["_id"]).json() == before
    assert api.ctx.redis.exists(*api.keys(doc["_id"])) == 3
    assert api.publisher.calls == calls


def test_list_shows_only_the_callers_brand(api: Api) -> None:
    first = api.created({"name": "first"})
    second = api.created({"name": "second"})
    other = api.created({"name": "other"}, brand="b")
    assert other["brandId"] == "brand-b"
    assert {d["_id"] for d in api.listed()} == {first["_id"], second["_id"]}
    assert api.listed(brand="b") == [other]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Basic key-a", "key-a", "Bearer", "Bearer brand-a", "Token key-a"],
)
def test_no_or_unknown_key_is_a_401_everywhere(api: Api, authorization: str | None) -> None:
    doc = api.created({"name": "n"})
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    requests = [
        ("POST", "/audience/create", {"name": "intruder"}),
        ("GET", "/audience/list", None),
        ("GET", f"/audience/{doc['_id']}", None),
        ("PATCH", f"/audience/{doc['_id']}", {"tags": "x"}),
        ("DELETE", f"/audience/{doc['_id']}", None),
        ("GET", f"/audience/{doc['_id']}/recipients", None),
    ]
    for method, path, body in requests:
        content = None if body is None else json.dumps(body)
        response = api.client.request(method, path, content=content, headers=headers)
        assert response.status_code == 401, (method, path)
    assert api.listed() == [doc]
    assert len(api.publisher.calls) == 1


# Update.

FULL = {
    "name": "full",
    "description": "all fields",
    "tagRule": "and",
    "tags": ["gold", "silver"],
    "tokenIds": ["1", "2"],
    "productIds": ["P1"],
    "uniqueOwner": False,
    "custodialWallet": "no",
    "isWalletActiveSinceNumberOfDays": 30,
    "walletActivity": "inactive",
    "countries": ["France"],
}


@pytest.mark.parametrize(
    "change", [{"name": "renamed"}, {"description": "other"}, {"name": " x ", "description": ""}]
)
def test_name_or_description_alone_keeps_the_revision_and_publishes_nothing(
    api: Api, change: dict[str, str]
) -> None:
    doc = api.created(FULL)
    response = api.patch(doc["_id"], change)
    assert response.status_code == 200, response.text
    updated = response.json()
    stored = {k: v.strip() if k == "name" else v for k, v in change.items()}
    assert updated == {**doc, **stored, "updatedAt": updated["updatedAt"]}
    assert instant(updated["updatedAt"]) >= instant(doc["updatedAt"])
    assert api.get(doc["_id"]).json() == updated
    assert len(api.publisher.calls) == 1


MEMBERSHIP_CHANGES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"tagRule": "or"}, {"tagRule": "or"}),
    ({"tagRule": "all"}, {"tagRule": "all"}),
    ({"tags": "bronze"}, {"tags": ["bronze"]}),
    ({"tags": []}, {"tags": []}),
    ({"tokenIds": {"type": "Buffer", "data": [51, 52, 51]}}, {"tokenIds": ["343"]}),
    ({"tokenIds": "1, 2, 3"}, {"tokenIds": ["1", "2", "3"]}),
    ({"productIds": "P2"}, {"productIds": ["P2"]}),
    ({"uniqueOwner": True}, {"uniqueOwner": True}),
    ({"custodialWallet": "all"}, {"custodialWallet": "all"}),
    ({"isWalletActiveSinceNumberOfDays": None}, {"isWalletActiveSinceNumberOfDays": None}),
    ({"isWalletActiveSinceNumberOfDays": 7}, {"isWalletActiveSinceNumberOfDays": 7}),
    ({"walletActivity": "active"}, {"walletActivity": "active"}),
    ({"countries": "France|Spain"}, {"countries": ["France", "Spain"]}),
    ({"tags": "gold", "countries": [], "name": "both"}, {"tags": ["gold"], "countries": []}),
]


@pytest.mark.parametrize(("sent", "stored"), MEMBERSHIP_CHANGES, ids=_case_id)
def test_a_membership_change_bumps_the_revision_once_and_publishes_it(
    api: Api, sent: dict[str, Any], stored: dict[str, Any]
) -> None:
    doc = api.created(FULL)
    response = api.patch(doc["_id"], sent)
    assert response.status_code == 200, response.text
    updated = response.json()
    renamed = {"name": sent["name"]} if "name" in sent else {}
    assert updated == {
        **doc,
        **stored,
        **renamed,
        "updatedAt": updated["updatedAt"],
        "revision": 2,
        "materialization": {**PENDING, "error": None},
    }
    assert api.get(doc["_id"]).json() == updated
    assert len(api.publisher.calls) == 2
    assert api.publisher.calls[1][:2] == (doc["_id"], 2)


@pytest.mark.parametrize(
    "same",
    [
        {"tags": ["gold", "silver"]},
        {"tags": [" gold", "silver "]},
        {"tokenIds": "1,2"},
        {"tokenIds": [1, 2]},
        {"tokenIds": {"type": "Buffer", "data": [49, 44, 50]}},
        {"productIds": "P1"},
        {"countries": "France"},
        {"tagRule": "and", "uniqueOwner": False, "custodialWallet": "no"},
        {"isWalletActiveSinceNumberOfDays": 30, "walletActivity": "inactive"},
    ],
    ids=_case_id,
)
def test_sending_the_stored_value_again_does_not_bump(api: Api, same: dict[str, Any]) -> None:
    doc = api.created(FULL)
    response = api.patch(doc["_id"], same)
    assert response.status_code == 200, response.text
    assert response.json() == {**doc, "updatedAt": response.json()["updatedAt"]}
    assert len(api.publisher.calls) == 1


def test_a_second_change_bumps_again_and_a_repeat_does_not(api: Api) -> None:
    doc = api.created({"name": "n"})
    assert api.patch(doc["_id"], {"tags": "a"}).json()["revision"] == 2
    assert api.patch(doc["_id"], {"tags": ["b"]}).json()["revision"] == 3
    assert api.patch(doc["_id"], {"tags": "b"}).json()["revision"] == 3
    assert [c[:2] for c in api.publisher.calls] == [
        (doc["_id"], 1),
        (doc["_id"], 2),
        (doc["_id"], 3),
    ]


@pytest.mark.parametrize(
    ("start", "change"),
    [
        ({"name": "n"}, {"tagRule": "tokenIds"}),
        ({"name": "n"}, {"tagRule": "productIds", "tokenIds": "1"}),
        ({"name": "n", "tagRule": "tokenIds", "tokenIds": "1"}, {"tokenIds": []}),
        ({"name": "n", "tagRule": "productIds", "productIds": "P"}, {"productIds": []}),
    ],
    ids=_case_id,
)
def test_a_patch_leaving_an_id_rule_without_ids_is_a_400_and_changes_nothing(
    api: Api, start: dict[str, Any], change: dict[str, Any]
) -> None:
    doc = api.created(start)
    response = api.patch(doc["_id"], change)
    assert response.status_code == 400, response.text
    named = {e["param"] for e in response.json()["errors"] if e["location"] == "body"}
    assert named & {"tagRule", "tokenIds", "productIds"}, response.text
    assert api.get(doc["_id"]).json() == doc
    assert len(api.publisher.calls) == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"colour": "red"}, "colour"),
        ({"$set": {"revision": 9}}, "$set"),
        ({"tags": "gold", "x.y": 1}, "x.y"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"uniqueOwner": "true", "tags": "x"}, "uniqueOwner"),
        ({"countries": "France||Spain"}, "countries"),
        ({"isWalletActiveSinceNumberOfDays": 36501}, "isWalletActiveSinceNumberOfDays"),
        ({"brandId": "brand-b"}, "brandId"),
    ],
    ids=_case_id,
)
def test_a_rejected_patch_changes_nothing(api: Api, body: dict[str, Any], param: str) -> None:
    doc = api.created(FULL)
    error = assert_rejected(api.patch(doc["_id"], body), param)
    assert error["value"] == body[param]
    assert api.get(doc["_id"]).json() == doc
    assert len(api.publisher.calls) == 1


@pytest.mark.parametrize("content", [b"{", b"[]", b'"x"', b"\xff"], ids=repr)
def test_a_patch_body_that_is_not_a_json_object_is_a_400(api: Api, content: bytes) -> None:
    doc = api.created(FULL)
    response = api.call("PATCH", f"/audience/{doc['_id']}", content=content)
    assert response.status_code == 400, response.text
    assert all(e["location"] == "body" for e in response.json()["errors"])
    assert api.get(doc["_id"]).json() == doc


def test_seed_update_example_on_the_seed_create_example(api: Api) -> None:
    doc = api.created(SEED_CREATE)
    response = api.patch(doc["_id"], SEED_UPDATE)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {
        **doc,
        "name": "Brand A Campaign",
        "uniqueOwner": True,
        "updatedAt": updated["updatedAt"],
        "revision": 2,
    }
    assert api.publisher.calls[1][:2] == (doc["_id"], 2)


def test_patch_passes_as_of_to_the_publisher_normalized(api: Api) -> None:
    doc = api.created({"name": "n"})
    response = api.patch(doc["_id"], {"tags": "a"}, asOf="2024-01-02T03:04:05.006+01:00")
    assert response.status_code == 200, response.text
    assert api.publisher.calls[1] == (doc["_id"], 2, "2024-01-02T02:04:05.006Z")
    assert_rejected(api.patch(doc["_id"], {"tags": "b"}, asOf="soon"), "asOf", "query")
    assert api.get(doc["_id"]).json()["tags"] == ["a"]


# Materialized audiences: counts, recipients, deletion.


SMALL = [
    passport("1", OWNER_A, "gold"),
    passport("2", OWNER_B, "gold", "silver"),
    passport("3", OWNER_A, "silver"),
    passport("10", OWNER_B, "gold"),
    passport("4", None, "gold"),
    passport("5", ZERO, "gold"),
    passport("6", "", "gold"),
    {**passport("7", OWNER_A, "gold"), "brandId": "brand-b"},
]


def all_recipients(api: Api, audience_id: str, count: str) -> tuple[list[str], int]:
    """Every recipient, page by page until cursor "0"; and the number of pages."""
    seen: list[str] = []
    cursor, pages = "0", 0
    while True:
        response = api.recipients(audience_id, cursor=cursor, count=count)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"recipients", "cursor", "revision"}
        assert isinstance(body["cursor"], str)
        seen += body["recipients"]
        cursor, pages = body["cursor"], pages + 1
        if cursor == "0":
            return seen, pages
        assert pages < 1000, "the cursor never came back to 0"


def test_recipients_before_any_materialization_is_a_409(api: Api) -> None:
    doc = api.created({"name": "n"})
    response = api.recipients(doc["_id"])
    assert response.status_code == 409
    assert "recipients" not in response.json()


def test_materialized_audience_shows_counts_and_serves_its_recipients(api: Api) -> None:
    api.ctx.stores.passports.insert_many([dict(p) for p in SMALL])
    doc = api.created({"name": "gold", "tags": "gold"})
    started = now_ms()
    api.materialize(doc["_id"])
    fetched = api.get(doc["_id"]).json()
    # Gold passports of brand-a with a real owner: 1 (A), 2 (B), 10 (B).
    assert (fetched["countNFT"], fetched["countOwner"]) == (3, 2)
    state = fetched["materialization"]
    assert (state["state"], state["revision"], state["error"]) == ("ready", 1, None)
    assert started <= instant(state["evaluatedAt"]) <= datetime.now(UTC)
    assert isinstance(state["durationMs"], int) and state["durationMs"] >= 0
    assert api.listed() == [fetched]
    response = api.recipients(doc["_id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert sorted(body["recipients"]) == ["1", "10", "2"]
    assert (body["cursor"], body["revision"]) == ("0", 1)


def test_a_membership_patch_keeps_serving_the_last_run_until_the_next(api: Api) -> None:
    api.ctx.stores.passports.insert_many([dict(p) for p in SMALL])
    doc = api.created({"name": "gold", "tags": "gold"})
    api.materialize(doc["_id"])
    ready = api.get(doc["_id"]).json()
    patched = api.patch(doc["_id"], {"uniqueOwner": True}).json()
    assert patched["revision"] == 2
    # The counts and the materialization still describe run 1, the one Redis holds.
    assert patched["materialization"] == {**ready["materialization"], "state": "pending"}
    assert (patched["countNFT"], patched["countOwner"]) == (3, 2)
    assert api.recipients(doc["_id"]).json()["revision"] == 1
    api.materialize(doc["_id"])
    # One passport per owner, the first by (length, text): A keeps 1, B keeps 2 over 10.
    body = api.recipients(doc["_id"]).json()
    assert (sorted(body["recipients"]), body["revision"]) == (["1", "2"], 2)
    assert api.get(doc["_id"]).json()["materialization"]["revision"] == 2


def test_recipients_page_through_to_exactly_the_audience(api: Api) -> None:
    members = [passport(f"p{i}", f"0x{i + 1:040x}", "gold") for i in range(300)]
    others = [passport("burned", ZERO, "gold"), passport("plain", OWNER_A, "silver")]
    foreign = [{**passport("theirs", OWNER_B, "gold"), "brandId": "brand-b"}]
    api.ctx.stores.passports.insert_many(members + others + foreign)
    doc = api.created({"name": "gold", "tags": "gold"})
    api.materialize(doc["_id"])
    seen, pages = all_recipients(api, doc["_id"], "50")
    assert pages > 1, "300 recipients in pages of 50 should take several pages"
    assert len(seen) == len(set(seen))
    assert set(seen) == {f"p{i}" for i in range(300)}
    whole, _ = all_recipients(api, doc["_id"], "10000")
    assert sorted(whole) == sorted(seen)


@pytest.mark.parametrize("count", ["0", "10001", "x", "-1", "1.5", ""])
def test_a_bad_count_is_a_query_400(api: Api, count: str) -> None:
    api.ctx.stores.passports.insert_one(passport("1", OWNER_A))
    doc = api.created({"name": "n"})
    api.materialize(doc["_id"])
    error = assert_rejected(api.recipients(doc["_id"], count=count), "count", "query")
    assert error["value"] == count


@pytest.mark.parametrize("cursor", ["abc", "-1", "1-x", "1-99999999999999999999", "0x10"])
def test_a_garbage_cursor_is_a_query_400(api: Api, cursor: str) -> None:
    api.ctx.stores.passports.insert_one(passport("1", OWNER_A))
    doc = api.created({"name": "n"})
    api.materialize(doc["_id"])
    error = assert_rejected(api.recipients(doc["_id"], cursor=cursor), "cursor", "query")
    assert error["value"] == cursor


def test_a_cache_miss_is_a_409_that_triggers_a_run(api: Api) -> None:
    api.ctx.stores.passports.insert_one(passport("1", OWNER_A))
    doc = api.created({"name": "n"})
    api.materialize(doc["_id"])
    assert api.recipients(doc["_id"]).json()["recipients"] == ["1"]
    api.ctx.redis.delete(*api.keys(doc["_id"]))
    response = api.recipients(doc["_id"])
    assert response.status_code == 409
    assert "recipients" not in response.json()
    assert len(api.publisher.calls) == 2
    audience_id, revision, as_of = api.publisher.calls[1]
    assert (audience_id, revision) == (doc["_id"], 1)
    # A run asked for with an instant is never skipped as fresh.
    assert as_of is not None
    instant(as_of)
    # More readers missing within the debounce window ask for no further run.
    assert api.recipients(doc["_id"]).status_code == 409
    assert len(api.publisher.calls) == 2


def test_delete_removes_the_document_and_its_redis_keys(api: Api) -> None:
    api.ctx.stores.passports.insert_one(passport("1", OWNER_A))
    doc = api.created({"name": "n"})
    kept = api.created({"name": "kept"})
    api.materialize(doc["_id"])
    api.materialize(kept["_id"])
    assert api.ctx.redis.exists(*api.keys(doc["_id"])) == 3
    response = api.call("DELETE", f"/audience/{doc['_id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert api.get(doc["_id"]).status_code == 404
    assert api.recipients(doc["_id"]).status_code == 404
    assert api.ctx.redis.exists(*api.keys(doc["_id"])) == 0
    assert [d["_id"] for d in api.listed()] == [kept["_id"]]
    assert api.ctx.redis.exists(*api.keys(kept["_id"])) == 3
    assert api.call("DELETE", f"/audience/{doc['_id']}").status_code == 404


def test_delete_of_a_never_materialized_audience(api: Api) -> None:
    doc = api.created({"name": "n"})
    assert api.call("DELETE", f"/audience/{doc['_id']}").status_code == 204
    assert api.listed() == []


# No input gives a 500.

GARBAGE_BODIES = [
    b'{"name": "n", "isWalletActiveSinceNumberOfDays": NaN}',
    b'{"name": "n", "isWalletActiveSinceNumberOfDays": Infinity}',
    b'{"name": "n", "isWalletActiveSinceNumberOfDays": 1e400}',
    b'{"name": "n", "colour": -Infinity}',
    b'{"name": "n", "tokenIds": [1e400]}',
    b'{"name": "n", "tokenIds": {"type": "Buffer", "data": [NaN]}}',
    b'{"name": "n", "tokenIds": [' + b"9" * 5000 + b"]}",
    b"[" * 200_000 + b"]" * 200_000,
    b'{"name": "n", "tags": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    b'{"name": {"$gt": ""}}',
    b'{"name": "n", "tags": {"$in": ["a"]}}',
    b'{"name": "n", "countries": [[["France"]]]}',
    b'{"name": "n", "": 1}',
    b'{"name": "n", "\\u0000": 1}',
    b'{"name": "n"} trailing',
    b"\x00\x01\x02",
]


@pytest.mark.parametrize("content", GARBAGE_BODIES, ids=lambda c: repr(c[:50]))
def test_garbage_bodies_are_a_400_never_a_500(api: Api, content: bytes) -> None:
    doc = api.created({"name": "kept"})
    for path, method in ((f"/audience/{doc['_id']}", "PATCH"), ("/audience/create", "POST")):
        response = api.call(method, path, content=content)
        assert response.status_code == 400, (method, response.text)
    assert api.listed() == [doc]


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "\\ud800"}',
        b'{"name": "n", "tags": ["\\udc00"]}',
        b'{"name": "n", "\\ud800": 1}',
        b'{"name": "n", "description": "\\ud83d"}',
    ],
    ids=repr,
)
def test_lone_surrogates_never_give_a_500(api: Api, content: bytes) -> None:
    response = api.call("POST", "/audience/create", content=content)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert api.get(response.json()["_id"]).status_code == 200


@pytest.mark.parametrize(
    "as_of", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "%ff", "2024-01-01T00:00Z+"]
)
def test_out_of_range_as_of_is_a_query_400(api: Api, as_of: str) -> None:
    assert_rejected(api.create({"name": "n"}, asOf=as_of), "asOf", "query")
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/audience/%ff"),
        ("GET", "/audience/%00/recipients"),
        ("GET", "/audience//recipients"),
        ("GET", "/audience/"),
        ("GET", "/audience/list/recipients"),
        ("DELETE", "/audience/list"),
        ("PUT", "/audience/create"),
        ("POST", "/audience/list"),
        ("GET", "/audience/" + "é" * 24),
    ],
)
def test_garbage_paths_never_give_a_500(api: Api, method: str, path: str) -> None:
    response = api.call(method, path, content=b"{}")
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "\u200b"}, "name"),
        ({"name": "a\u0000b"}, "name"),
        ({"name": "n", "tags": ["a\u0007"]}, "tags"),
        (
            {"name": "n", "tagRule": "tokenIds", "tokenIds": {"type": "Buffer", "data": [0]}},
            "tokenIds",
        ),
    ],
)
def test_invisible_names_and_control_characters_are_refused(
    api: Api, body: dict[str, Any], param: str
) -> None:
    assert_rejected(api.create(body), param)
    assert_nothing_stored(api)
