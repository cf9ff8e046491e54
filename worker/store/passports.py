"""Reading passports in bounded batches.

A scan never asks for an unbounded result: it walks one key range of an index at a time, a
`limit`ed request each, so the store never builds a huge result and a scan that stops can
start again from the last key it saw. It walks in one of two orders:

- `owner`: (owner, tokenId) along the (brandId, owner, tokenId) index. All of one owner's
  passports come together, so a rule on wallets needs each profile for one batch (two, when
  a batch ends inside them), and a range of owners is a partition no other one shares.
- `tokenId`: along the (brandId, tokenId) index, the order passports are usually written
  in, which a store reads with the least jumping about; for rules that read no profile.
Every request's answer is yielded, an empty one too, so that a caller counts the store round
trips by the batches it gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from pymongo.collection import Collection

from worker.audience.rule import ZERO_ADDRESS
from worker.store.mongo import whole

PROJECTION = {"_id": 0, "tokenId": 1, "owner": 1, "tags": 1, "productId": 1}
# Burned or unclaimed passports are left out by the store; the worker checks again.
HAS_OWNER = {"$nin": [None, "", ZERO_ADDRESS]}
# A brand of a million costs 15 probes, each reading index keys only.
ESTIMATE_START = 64
ORDERS = {"owner": [("owner", 1), ("tokenId", 1)], "tokenId": [("tokenId", 1)]}


def scan(
    passports: Collection[Any],
    query: dict[str, Any],
    batch_size: int,
    after: str | None = None,
    upto: str | None = None,
    key: str = "owner",
) -> Iterator[list[dict[str, Any]]]:
    """Yield the passports matching `query` in `key` order, `batch_size` at a time, with
    keys above `after` and up to `upto` when they are given."""
    owner = query.get("owner", {})
    if "$in" not in owner:
        # An owner list leaves out all but its own addresses already: a second condition on
        # the owner would only cost some stores another look at every passport they walk.
        owner = {**HAS_OWNER, **owner}
    query = {**query, "owner": owner}
    bounds = {**query.get(key, {})}
    if upto is not None:
        bounds["$lte"] = upto
    last = after
    while True:
        key_range = bounds if last is None else {**bounds, "$gt": last}
        page = {**query, key: key_range} if key_range else query
        found = passports.find(page, PROJECTION).sort(ORDERS[key])
        batch = list(whole(found, batch_size))
        yield batch
        if len(batch) < batch_size:
            return
        last, token = batch[-1][key], batch[-1]["tokenId"]
        if key == "owner":
            # The batch may have stopped inside this owner's passports: finish them first.
            yield from _rest_of_owner(passports, query, last, token, batch_size)


def _rest_of_owner(
    passports: Collection[Any], query: dict[str, Any], owner: str, token: str, batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    while True:
        rest = {**query, "owner": {"$eq": owner}, "tokenId": {"$gt": token}}
        batch = list(whole(passports.find(rest, PROJECTION).sort("tokenId", 1), batch_size))
        yield batch
        if len(batch) < batch_size:
            return
        token = batch[-1]["tokenId"]


def by_token_ids(
    passports: Collection[Any], brand_id: str, token_ids: Iterable[str], chunk_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield the brand's passports among `token_ids`, one `$in` chunk at a time."""
    ordered = sorted(set(token_ids))
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        # The chunk's first and last ids bound it, so a store that cannot use the index for
        # `$in` still reads only that stretch of the brand, not all of it per chunk.
        keys = {"$in": chunk, "$gte": chunk[0], "$lte": chunk[-1]}
        query = {"brandId": {"$eq": brand_id}, "tokenId": keys, "owner": HAS_OWNER}
        # One passport at most per id: the (brandId, tokenId) index is unique.
        yield list(whole(passports.find(query, PROJECTION), len(chunk)))


class Estimate(NamedTuple):
    passports: int
    requests: int  # the store round trips it took


def size_estimate(passports: Collection[Any], brand_id: str, cap: int) -> Estimate:
    """The brand's passports (burned ones too) rounded up to a power of two, at most `cap`.

    Found by skipping along the (brandId, tokenId) index to doubling positions: the store
    reads index keys only, never a passport, and about twice the brand's size of them.
    """
    query = {"brandId": {"$eq": brand_id}}
    size = ESTIMATE_START
    requests = 0
    while size < cap:
        found = passports.find(query, {"_id": 0, "tokenId": 1}).sort("tokenId", 1)
        requests += 1
        if next(iter(found.skip(size).limit(1)), None) is None:
            return Estimate(size, requests)
        size *= 2
    return Estimate(cap, requests)
