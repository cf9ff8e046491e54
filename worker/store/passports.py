"""Reading passports in bounded batches.

A scan never asks for an unbounded result: it walks the brand's passports in `tokenId`
order, one `limit`ed range at a time, so the store never builds a huge result and a scan that
stops can start again from the last key it saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pymongo.collection import Collection

from worker.audience.rule import ZERO_ADDRESS

PROJECTION = {"_id": 0, "tokenId": 1, "owner": 1, "tags": 1, "productId": 1}
# Burned or unclaimed passports are left out by the store; the worker checks again.
HAS_OWNER = {"$nin": [None, "", ZERO_ADDRESS]}


def scan(
    passports: Collection[Any], query: dict[str, Any], batch_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield the passports matching `query` in tokenId order, `batch_size` at a time."""
    last: str | None = None
    while True:
        bounded = {**query, "owner": HAS_OWNER}
        if last is not None:
            bounded["tokenId"] = {"$gt": last}
        cursor = passports.find(bounded, PROJECTION).sort("tokenId", 1).limit(batch_size)
        batch = list(cursor)
        if batch:
            yield batch
        if len(batch) < batch_size:
            return
        last = batch[-1]["tokenId"]


def by_token_ids(
    passports: Collection[Any], brand_id: str, token_ids: Iterable[str], chunk_size: int
) -> Iterator[list[dict[str, Any]]]:
    """Yield the brand's passports among `token_ids`, one `$in` chunk at a time."""
    ordered = sorted(set(token_ids))
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        query = {"brandId": {"$eq": brand_id}, "tokenId": {"$in": chunk}, "owner": HAS_OWNER}
        batch = list(passports.find(query, PROJECTION))
        if batch:
            yield batch
