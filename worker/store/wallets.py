"""Reading wallet profiles: by address in chunks, or by a filter in bounded pages."""

from __future__ import annotations

from collections.abc import Collection as Sized
from collections.abc import Iterator, Sequence
from typing import Any

from pymongo.collection import Collection

from worker.store.mongo import whole

PROJECTION = {"_id": 1, "custodial": 1, "country": 1, "lastActiveAt": 1}


def profiles(
    wallets: Collection[Any],
    addresses: Sized[str],
    chunk_size: int,
    filters: Sequence[dict[str, Any]] = ({},),
) -> dict[str, dict[str, Any]]:
    """The profiles of `addresses` that pass one of `filters`, keyed by address.

    One query per chunk of addresses and filter; an empty list of either asks nothing.
    """
    ordered = sorted(addresses)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        for query in filters:
            asked = wallets.find({**query, "_id": {"$in": chunk}}, PROJECTION)
            # One profile at most per address: `_id` is unique.
            for profile in whole(asked, len(chunk)):
                found[profile["_id"]] = profile
    return found


def matching(
    wallets: Collection[Any], query: dict[str, Any], page_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield the profiles matching `query` in address order, `page_size` at a time.

    A page starts where the last one ended through the `_id` index's bounds (`min`, with the
    hint it requires) rather than an `_id` range in the filter: both mean the same to
    MongoDB, and some MongoDB-speaking servers answer only the former from the index.
    """
    last: str | None = None
    while True:
        found = wallets.find(query, PROJECTION).sort("_id", 1)
        if last is not None:
            # `min` is inclusive: ask for one more, then drop the profile already yielded.
            found = found.min([("_id", last)]).hint([("_id", 1)])
        page = list(whole(found, page_size + (last is not None)))
        if last is not None and page and page[0]["_id"] == last:
            page = page[1:]
        yield page  # an empty one too: one per request, for the caller to count
        if len(page) < page_size:
            return
        last = page[-1]["_id"]


def more_than(wallets: Collection[Any], query: dict[str, Any], count: int) -> bool:
    """Whether more than `count` profiles match; stops reading at the first one past it."""
    # A skipped find rather than a counting pipeline: both stop early, and some
    # MongoDB-speaking servers compare dates correctly in find alone.
    probe = wallets.find(query, {"_id": 1}).skip(count).limit(1)
    return next(iter(probe), None) is not None
