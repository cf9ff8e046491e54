"""Reading wallet profiles by address, in chunks."""

from __future__ import annotations

from collections.abc import Collection as Sized
from typing import Any

from pymongo.collection import Collection

PROJECTION = {"_id": 1, "custodial": 1, "country": 1, "lastActiveAt": 1}


def profiles(
    wallets: Collection[Any], addresses: Sized[str], chunk_size: int
) -> dict[str, dict[str, Any]]:
    """The profiles that exist for `addresses`, keyed by address; an empty list asks nothing."""
    ordered = sorted(addresses)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ordered), chunk_size):
        chunk = ordered[start : start + chunk_size]
        for profile in wallets.find({"_id": {"$in": chunk}}, PROJECTION):
            found[profile["_id"]] = profile
    return found
