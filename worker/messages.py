"""Task arguments as producers send them, validated before anything touches a store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from worker import instants
from worker.errors import InvalidMessage
from worker.materialize.run import Request


def materialize_request(audience_id: Any, revision: Any = None, as_of: Any = None) -> Request:
    """Check `audiences.materialize` arguments; InvalidMessage says what is wrong."""
    return Request(_object_id(audience_id), _revision(revision), _instant(as_of))


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
        return instants.parse(value)
    except ValueError:
        raise InvalidMessage("as_of must be an ISO-8601 instant with a UTC offset") from None
