"""Instants as the contract writes them: ISO-8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(moment: datetime) -> datetime:
    """The same instant, timezone-aware in UTC (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse(text: str) -> datetime:
    """An ISO-8601 instant; one without an offset is rejected rather than guessed."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an instant needs a UTC offset or Z")
    return utc(moment)


def stored(value: object) -> datetime | None:
    """An instant read back from the store, or None.

    Some MongoDB-speaking servers hand back a date written by `$set` as its text (naive,
    UTC); real MongoDB returns a date. Both are accepted, nothing else is.
    """
    if isinstance(value, datetime):
        return utc(value)
    if isinstance(value, str):
        try:
            return utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None
