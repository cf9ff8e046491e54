"""Task arguments as producers send them, validated before anything touches a store.

Producers may be any Celery client in any language, so arguments are bound by hand: by
position or keyword, with too many, unknown, repeated or missing ones refused as
InvalidMessage, which the task logs once and never retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from worker import instants
from worker.audience.fields import MAX_ITEMS, StringList, TokenIdList
from worker.errors import InvalidMessage
from worker.materialize.partition import Part
from worker.materialize.run import Request

MAX_CHANGE_ITEMS = 1_000_000


def bind(names: tuple[str, ...], required: int, args: Any, kwargs: Any) -> dict[str, Any]:
    """Producer arguments to a mapping of `names`; the first `required` must be given."""
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise InvalidMessage("arguments must be a list and a mapping")
    if len(args) > len(names):
        raise InvalidMessage(f"takes at most {len(names)} arguments, got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in names:
            raise InvalidMessage(f"unknown argument {str(key)[:50]!r}")
        if key in bound:
            raise InvalidMessage(f"argument {key!r} given twice")
        bound[key] = value
    missing = [name for name in names[:required] if name not in bound]
    if missing:
        raise InvalidMessage(f"missing argument {missing[0]!r}")
    return bound


def materialize_request(*args: Any, **kwargs: Any) -> Request:
    """Check `audiences.materialize` arguments: audience_id, revision=None, as_of=None."""
    bound = bind(("audience_id", "revision", "as_of"), 1, args, kwargs)
    return Request(
        _object_id(bound["audience_id"]),
        _revision(bound.get("revision")),
        _instant(bound.get("as_of")),
    )


PART_ARGUMENTS = ("audience_id", "run_id", "seq", "revision", "as_of", "index", "parts",
                  "after", "upto")  # fmt: skip


class PartMessage(BaseModel):
    """The numbers and range of one part, as `part_message` sends them."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_id: StrictStr = Field(pattern="^[0-9a-f]{32}$")
    seq: StrictInt = Field(ge=1)
    revision: StrictInt = Field(ge=1)
    index: StrictInt = Field(ge=0)
    parts: StrictInt = Field(ge=2)
    after: StrictStr | None
    upto: StrictStr | None


def part_request(*args: Any, **kwargs: Any) -> Part:
    """Check `audiences.materialize_part` arguments; every one is required."""
    bound = bind(PART_ARGUMENTS, len(PART_ARGUMENTS), args, kwargs)
    numbers = _model(PartMessage, {k: v for k, v in bound.items() if k in PartMessage.model_fields})
    as_of = _instant(bound["as_of"])
    if as_of is None or numbers.index >= numbers.parts:
        raise InvalidMessage("a part needs as_of, and an index below parts")
    return Part(
        _object_id(bound["audience_id"]), numbers.run_id, numbers.seq, numbers.revision, as_of,
        numbers.index, numbers.parts, numbers.after, numbers.upto,
    )  # fmt: skip


def part_message(part: Part) -> dict[str, Any]:
    """The keyword arguments that `part_request` reads back into `part`."""
    return {
        "audience_id": str(part.audience_id),
        "run_id": part.run_id,
        "seq": part.seq,
        "revision": part.revision,
        "as_of": instants.iso(part.as_of),
        "index": part.index,
        "parts": part.parts,
        "after": part.after,
        "upto": part.upto,
    }


class PassportsChanged(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    brand_id: StrictStr
    token_ids: TokenIdList


class WalletsChanged(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    addresses: StringList


def passports_changed(*args: Any, **kwargs: Any) -> PassportsChanged:
    bound = bind(("brand_id", "token_ids"), 2, args, kwargs)
    slices = [
        _model(PassportsChanged, {**bound, "token_ids": part})
        for part in _slices(bound["token_ids"])
    ]
    token_ids = [token for part in slices for token in part.token_ids]
    # Each slice is checked; the whole is only put together.
    return PassportsChanged.model_construct(brand_id=slices[0].brand_id, token_ids=token_ids)


def wallets_changed(*args: Any, **kwargs: Any) -> WalletsChanged:
    bound = bind(("addresses",), 1, args, kwargs)
    slices = [_model(WalletsChanged, {"addresses": part}) for part in _slices(bound["addresses"])]
    addresses = [a.lower() for part in slices for a in part.addresses]
    return WalletsChanged.model_construct(addresses=addresses)


def _slices(value: Any) -> list[Any]:
    """A change may name more ids than an audience may hold: check it a slice at a time."""
    if not isinstance(value, list) or len(value) <= MAX_ITEMS:
        return [value]
    if len(value) > MAX_CHANGE_ITEMS:
        raise InvalidMessage(f"a change may name at most {MAX_CHANGE_ITEMS} ids; split it")
    return [value[start : start + MAX_ITEMS] for start in range(0, len(value), MAX_ITEMS)]


def no_arguments(*args: Any, **kwargs: Any) -> None:
    bind((), 0, args, kwargs)


def _model(model: type[Any], bound: dict[str, Any]) -> Any:
    try:
        return model.model_validate(bound)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        raise InvalidMessage(f"{where}: {first['msg']}") from None


def _object_id(value: Any) -> ObjectId:
    if not isinstance(value, str) or len(value) != 24:
        raise InvalidMessage("audience_id must be a 24-hex ObjectId string")
    try:
        return ObjectId(value)
    except InvalidId:
        raise InvalidMessage("audience_id must be a 24-hex ObjectId string") from None


def _revision(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidMessage("revision must be a positive integer or null")
    return value


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage("as_of must be an ISO-8601 instant string or null")
    try:
        return instants.parse_as_of(value)
    except ValueError as error:
        raise InvalidMessage(f"as_of: {error}") from None
