"""A synthetic brand shaped like the real data: most owners hold one passport, a few hundreds.

Everything is drawn from a seeded generator, so a size always gives the same brand.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.store.mongo import Stores, ensure_indexes

BRAND = "bench"
TAGS = [f"tag-{n:02d}" for n in range(40)]
PRODUCTS = [f"product-{n:03d}" for n in range(200)]
COUNTRIES = ["France", "Spain", "Germany", "Japan", "Brazil", "Canada", "India", "Italy"]
END = datetime(2022, 10, 20, tzinfo=UTC)
CHUNK = 10_000


def owners_for(size: int) -> int:
    """300k wallets at 1M passports, the same proportion below."""
    return max(1, size * 3 // 10)


def address(n: int) -> str:
    # Numbered from 1: address 0 would be the zero address, which means burned.
    return f"0x{n + 1:040x}"


def _owner(rng: random.Random, n: int, size: int) -> str:
    """Two thirds of the owners hold one passport each; the rest share the other passports,
    skewed so that a few collectors hold hundreds."""
    owners = owners_for(size)
    singles = owners * 2 // 3
    if n < singles:
        return address(n)
    collectors = max(1, owners - singles)
    return address(singles + int(collectors * rng.random() ** 1.5))


def passports(size: int, seed: int = 7) -> Iterator[list[dict[str, Any]]]:
    rng = random.Random(seed)
    batch: list[dict[str, Any]] = []
    for n in range(size):
        tags = rng.sample(TAGS[:8], 1) + rng.sample(TAGS, rng.randint(0, 3))
        batch.append(
            {
                "brandId": BRAND,
                "tokenId": str(n),
                "productId": rng.choice(PRODUCTS),
                "tags": sorted(set(tags)),
                "owner": _owner(rng, n, size),
            }
        )
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def wallets(size: int, seed: int = 11) -> Iterator[list[dict[str, Any]]]:
    """The profiles of the brand's owners (about 2 % of them have none)."""
    return _profiles(random.Random(seed), range(owners_for(size)))


def other_wallets(size: int, seed: int = 13) -> Iterator[list[dict[str, Any]]]:
    """Profiles of owners of other brands' passports: twice as many as the brand's owners,
    none of whom holds one of its passports, as in a wallet store several brands share."""
    owners = owners_for(size)
    return _profiles(random.Random(seed), range(owners, 3 * owners))


def _profiles(rng: random.Random, numbers: range) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for n in numbers:
        if rng.random() < 0.02:
            continue
        last = END - timedelta(days=rng.uniform(0, 730)) if rng.random() < 0.9 else None
        batch.append(
            {
                "_id": address(n),
                "custodial": rng.random() < 0.4,
                "country": rng.choice(COUNTRIES) if rng.random() < 0.98 else None,
                "lastActiveAt": last,
            }
        )
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def load(stores: Stores, size: int) -> None:
    """Replace the bench brand's data with a fresh one of `size` passports."""
    stores.passports.delete_many({"brandId": BRAND})
    stores.wallets.delete_many({})
    ensure_indexes(stores)
    for batch in wallets(size):
        stores.wallets.insert_many(batch, ordered=False)
    for batch in passports(size):
        stores.passports.insert_many(batch, ordered=False)


def add_other_wallets(stores: Stores, size: int) -> int:
    """Add other brands' owners' profiles to the wallet store; how many were added."""
    added = 0
    for batch in other_wallets(size):
        stores.wallets.insert_many(batch, ordered=False)
        added += len(batch)
    return added
