"""Audience fields as accepted on create and update (contract section 3), normalized.

The normalizers turn every accepted form into the stored form: one tag as a string becomes a
one-item list, countries separated by `|` become a list, token ids given as integers, as a
comma-separated string or as a serialized Node.js Buffer become a list of strings.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

MAX_ITEMS = 10_000
MAX_ITEM_CHARS = 200
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_ACTIVITY_DAYS = 36_500

# Defaults are not validated: a field left at this default was not sent.
NOT_SENT: Any = None

TagRule = Literal["or", "any", "and", "all", "tokenIds", "productIds"]
Custodial = Literal["yes", "no", "all"]
Activity = Literal["active", "inactive", "all"]

# Fields whose change alters who is in the audience: they bump the revision.
MEMBERSHIP_FIELDS = (
    "tagRule",
    "tags",
    "tokenIds",
    "productIds",
    "uniqueOwner",
    "custodialWallet",
    "isWalletActiveSinceNumberOfDays",
    "walletActivity",
    "countries",
)

DEFAULTS: dict[str, Any] = {
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


def _problem(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _clean_items(items: list[Any], *, allow_int: bool = False) -> list[str]:
    if len(items) > MAX_ITEMS:
        raise _problem("too_many", f"must hold at most {MAX_ITEMS} items")
    cleaned = []
    for item in items:
        if allow_int and isinstance(item, int) and not isinstance(item, bool):
            if item < 0:
                raise _problem("bad_item", "integer items must not be negative")
            item = str(item)
        if not isinstance(item, str):
            kinds = "strings or integers" if allow_int else "strings"
            raise _problem("bad_item", f"items must be {kinds}")
        item = item.strip()
        if not item:
            raise _problem("empty_item", "items must not be empty")
        if _has_control(item):
            raise _problem("control_item", "items must not hold control characters")
        if len(item) > MAX_ITEM_CHARS:
            raise _problem("long_item", f"items must be at most {MAX_ITEM_CHARS} characters")
        cleaned.append(item)
    return cleaned


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def _visible(text: str) -> bool:
    """At least one character that is neither white space, a separator nor a format mark."""
    return any(unicodedata.category(char)[0] not in "ZC" for char in text)


def _split(text: str, separator: str) -> list[str]:
    # A blank string is an empty list; a blank item between separators is an error.
    return text.split(separator) if text.strip() else []


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return _clean_items([value])
    if isinstance(value, list):
        return _clean_items(value)
    raise _problem("bad_type", "must be an array of strings or one string")


def _countries(value: Any) -> list[str]:
    if isinstance(value, str):
        return _clean_items(_split(value, "|"))
    if isinstance(value, list):
        return _clean_items(value)
    raise _problem("bad_type", "must be an array of strings or one string separated by |")


def _buffer_text(value: dict[str, Any]) -> str:
    data = value.get("data")
    if (
        set(value) != {"type", "data"}
        or value.get("type") != "Buffer"
        or not isinstance(data, list)
    ):
        raise _problem("bad_buffer", 'a Buffer must be {"type": "Buffer", "data": [bytes]}')
    if len(data) > MAX_ITEMS * (MAX_ITEM_CHARS + 1):
        raise _problem("too_many", "Buffer is too large")
    if not all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in data):
        raise _problem("bad_buffer", "Buffer data must be integers from 0 to 255")
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise _problem("bad_buffer", "Buffer data must be UTF-8 text") from None


def _token_ids(value: Any) -> list[str]:
    if isinstance(value, dict):
        return _clean_items(_split(_buffer_text(value), ","))
    if isinstance(value, str):
        return _clean_items(_split(value, ","))
    if isinstance(value, list):
        return _clean_items(value, allow_int=True)
    raise _problem("bad_type", "must be an array, a comma-separated string or a serialized Buffer")


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise _problem("bad_type", "must be a string")
    value = value.strip()
    if not 1 <= len(value) <= MAX_NAME_CHARS:
        raise _problem("bad_length", f"must be 1 to {MAX_NAME_CHARS} characters after trimming")
    if _has_control(value) or not _visible(value):
        raise _problem("bad_text", "must hold visible text and no control characters")
    return value


def _description(value: Any) -> str:
    if not isinstance(value, str):
        raise _problem("bad_type", "must be a string")
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise _problem("bad_length", f"must be at most {MAX_DESCRIPTION_CHARS} characters")
    return value


# JSON Schemas of the accepted forms, for the API's OpenAPI document.
_ITEM = {"type": "string", "minLength": 1, "maxLength": MAX_ITEM_CHARS, "pattern": r"\S"}
_ITEMS = {"type": "array", "items": _ITEM, "maxItems": MAX_ITEMS}
_LIST_OR_ONE = {"anyOf": [_ITEMS, _ITEM]}
_SEPARATED = {"type": "string", "maxLength": MAX_ITEMS * (MAX_ITEM_CHARS + 1)}
_BUFFER = {
    "type": "object",
    "properties": {
        "type": {"const": "Buffer"},
        "data": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}},
    },
    "required": ["type", "data"],
    "additionalProperties": False,
}
_TOKEN_ITEMS = {
    "type": "array",
    "items": {"anyOf": [_ITEM, {"type": "integer", "minimum": 0}]},
    "maxItems": MAX_ITEMS,
}

Name = Annotated[
    str,
    BeforeValidator(_name),
    WithJsonSchema({"type": "string", "maxLength": MAX_NAME_CHARS, "pattern": r"\S"}),
]
Description = Annotated[
    str,
    BeforeValidator(_description),
    WithJsonSchema({"type": "string", "maxLength": MAX_DESCRIPTION_CHARS}),
]
StringList = Annotated[list[str], BeforeValidator(_string_list), WithJsonSchema(_LIST_OR_ONE)]
CountryList = Annotated[
    list[str], BeforeValidator(_countries), WithJsonSchema({"anyOf": [_ITEMS, _SEPARATED]})
]
TokenIdList = Annotated[
    list[str],
    BeforeValidator(_token_ids),
    WithJsonSchema({"anyOf": [_TOKEN_ITEMS, _SEPARATED, _BUFFER]}),
]
ActivityDays = Annotated[StrictInt, Field(ge=0, le=MAX_ACTIVITY_DAYS)]


class AudiencePatch(BaseModel):
    """The fields one update may send; only those sent change.

    Defaults are never validated, so the `NOT_SENT` default marks "not sent" while a null that
    is sent still fails the field's own check (only the activity days accept null).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Name = Field(default=NOT_SENT)
    description: Description = Field(default=NOT_SENT)
    tagRule: TagRule = Field(default=NOT_SENT)
    tags: StringList = Field(default=NOT_SENT)
    tokenIds: TokenIdList = Field(default=NOT_SENT)
    productIds: StringList = Field(default=NOT_SENT)
    uniqueOwner: StrictBool = Field(default=NOT_SENT)
    custodialWallet: Custodial = Field(default=NOT_SENT)
    isWalletActiveSinceNumberOfDays: ActivityDays | None = None
    walletActivity: Activity = Field(default=NOT_SENT)
    countries: CountryList = Field(default=NOT_SENT)

    def sent(self) -> dict[str, Any]:
        """The normalized fields the caller sent, and only those."""
        return {key: getattr(self, key) for key in self.model_fields_set}


class AudienceCreate(AudiencePatch):
    """The fields of a new audience: a name, and any other field of the patch."""

    name: Name

    def stored(self) -> dict[str, Any]:
        """Every field in stored form, defaults filled in."""
        return {**DEFAULTS, **self.sent()}


def rule_problems(fields: dict[str, Any]) -> list[tuple[str, str]]:
    """Cross-field checks on a whole stored audience: (param, message) pairs."""
    rule = fields.get("tagRule", DEFAULTS["tagRule"])
    if rule == "tokenIds" and not fields.get("tokenIds"):
        return [("tokenIds", "tagRule tokenIds needs at least one token id")]
    if rule == "productIds" and not fields.get("productIds"):
        return [("productIds", "tagRule productIds needs at least one product id")]
    return []
