"""Instants as the contract writes them: ISO-8601 UTC with milliseconds and `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(moment: datetime) -> datetime:
    """The same instant, timezone-aware in UTC (naive values are taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    # isoformat pads the year to four digits; strftime("%Y") does not on every platform.
    return utc(moment).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse(text: str) -> datetime:
    """An ISO-8601 instant; one without an offset is rejected rather than guessed."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an instant needs a UTC offset or Z")
    try:
        return utc(moment)
    except OverflowError:
        raise ValueError("the instant is outside the years 1 to 9999 in UTC") from None


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


EARLIEST_AS_OF_YEAR = 1900


def parse_as_of(text: str) -> datetime:
    """An evaluation instant: an ISO-8601 instant from 1900 on, so that even the longest
    activity window (36,500 days) stays within the calendar."""
    moment = parse(text)
    if moment.year < EARLIEST_AS_OF_YEAR:
        raise ValueError(f"an evaluation instant must be in {EARLIEST_AS_OF_YEAR} or later")
    return moment
