"""Task arguments are checked before anything touches a store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import ObjectId

from worker.errors import InvalidMessage
from worker.messages import materialize_request, passports_changed, wallets_changed
from worker.tasks import materialize_task, refresh_due_task

GOOD_ID = "660ffa248b242638ac6ccac5"


def test_positional_and_keyword_forms_give_the_same_request() -> None:
    by_position = materialize_request(GOOD_ID, 3, "2022-10-20T00:00:00Z")
    assert by_position.audience_id == ObjectId(GOOD_ID)
    assert by_position.revision == 3
    assert by_position.as_of == datetime(2022, 10, 20, tzinfo=UTC)
    assert materialize_request(audience_id=GOOD_ID) == materialize_request(GOOD_ID, None, None)


def test_as_of_with_an_offset_is_converted_to_utc() -> None:
    request = materialize_request(GOOD_ID, None, "2022-10-20T02:00:00+02:00")
    assert request.as_of == datetime(2022, 10, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "args",
    [
        ("660ffa248b242638ac6ccac3za",),
        ("",),
        (12345,),
        ({"$gt": ""},),
        (GOOD_ID, 0),
        (GOOD_ID, -1),
        (GOOD_ID, True),
        (GOOD_ID, "2"),
        (GOOD_ID, 1.5),
        (GOOD_ID, None, "yesterday"),
        (GOOD_ID, None, "2022-10-20T00:00:00"),
        (GOOD_ID, None, 1666224000),
    ],
)
def test_malformed_arguments_are_refused(args: tuple[object, ...]) -> None:
    with pytest.raises(InvalidMessage):
        materialize_request(*args)


def test_a_malformed_message_is_logged_once_and_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Run in-process with no store configured: a rejected message returns before any is used.
    result = materialize_task.apply(args=["not-an-id"], kwargs={"revision": "x"})

    assert result.successful()
    assert result.result["status"] == "rejected"
    assert "audience_id" in result.result["reason"]
    rejected = [r for r in caplog.records if r.getMessage() == "message.rejected"]
    assert len(rejected) == 1
    assert rejected[0].levelname == "WARNING"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((GOOD_ID, 1, None, 5), {}),
        ((GOOD_ID,), {"x": 1}),
        ((GOOD_ID,), {"audience_id": GOOD_ID}),
        ((), {}),
        ((), {"revision": 1}),
        ((GOOD_ID, None, "0001-01-01T00:00:00Z"), {}),
    ],
)
def test_argument_shapes_that_can_never_bind_are_refused(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(InvalidMessage):
        materialize_request(*args, **kwargs)


def test_too_many_arguments_are_rejected_by_the_task_not_failed() -> None:
    result = materialize_task.apply(args=[GOOD_ID, 1, None, 5])
    assert result.successful()
    assert result.result["status"] == "rejected"


def test_refresh_due_takes_no_arguments() -> None:
    assert refresh_due_task.apply(args=[1]).result["status"] == "rejected"


def test_change_messages_are_checked_with_the_audience_field_rules() -> None:
    change = passports_changed("cryptopunks", [1, " 2 "])
    assert (change.brand_id, change.token_ids) == ("cryptopunks", ["1", "2"])
    assert passports_changed(brand_id="b", token_ids="3,4").token_ids == ["3", "4"]
    assert wallets_changed(["0xAB"]).addresses == ["0xab"]
    for bad in [("b",), (5, ["1"]), ("b", [""]), ("b", {"$gt": ""})]:
        with pytest.raises(InvalidMessage):
            passports_changed(*bad)
    for bad_addresses in [None, [1], [""], {"$ne": 1}]:
        with pytest.raises(InvalidMessage):
            wallets_changed(bad_addresses)


def test_a_change_may_name_more_ids_than_an_audience_holds() -> None:
    assert len(passports_changed("b", [str(n) for n in range(25_000)]).token_ids) == 25_000
    assert wallets_changed(["0xA"] * 20_001).addresses == ["0xa"] * 20_001
    with pytest.raises(InvalidMessage, match="split it"):
        passports_changed("b", ["1"] * 1_000_001)
    with pytest.raises(InvalidMessage):
        passports_changed("b", ["1"] * 15_000 + [""])
