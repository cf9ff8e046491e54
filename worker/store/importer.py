"""Loading `passports.jsonl` and `wallets.jsonl` into the store, idempotently.

Each batch looks up which records exist, inserts the new ones and rewrites only those whose
content changed, by `_id`. Importing the same files twice therefore leaves one copy of each
and writes nothing the second time; a changed line updates its record in place.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection

from worker import instants
from worker.store.mongo import Stores, ensure_indexes

BATCH = 1_000
Progress = Callable[[int], None]
Record = dict[str, Any]


class ImportLineError(ValueError):
    """A line of an import file that does not have the import format."""


@dataclass(frozen=True)
class ImportCounts:
    passports: int
    wallets: int


def import_files(
    stores: Stores, passports: Path, wallets: Path, progress: Progress | None = None
) -> ImportCounts:
    # A first pass checks every line, so a bad file is refused whole before anything is written.
    for path, parse in ((wallets, _wallet), (passports, _passport)):
        for _ in _records(path, parse):
            pass
    ensure_indexes(stores)
    on = progress or (lambda _: None)
    n_wallets = _load(stores.wallets, _records(wallets, _wallet), _wallet_key, on)
    n_passports = _load(stores.passports, _records(passports, _passport), _passport_key, on)
    return ImportCounts(n_passports, n_wallets)


def _load(
    collection: Collection[Any],
    records: Iterator[Record],
    key: Callable[[Collection[Any], list[Record]], dict[Any, Record]],
    progress: Progress,
) -> int:
    total = 0
    while batch := list(islice(records, BATCH)):
        # Within a batch the last line for a record wins, as it would across batches.
        unique = {_identity(record): record for record in batch}
        existing = key(collection, list(unique.values()))
        _write(collection, unique, existing)
        total += len(batch)
        progress(len(batch))
    return total


def _write(
    collection: Collection[Any], unique: dict[Any, Record], existing: dict[Any, Record]
) -> None:
    new = [record for ident, record in unique.items() if ident not in existing]
    changed = [
        UpdateOne({"_id": existing[ident]["_id"]}, {"$set": record})
        for ident, record in unique.items()
        if ident in existing and _differs(existing[ident], record)
    ]
    if new:
        collection.insert_many(new, ordered=False)
    if changed:
        collection.bulk_write(changed, ordered=False)


def _differs(stored: Record, record: Record) -> bool:
    return any(stored.get(field) != value for field, value in record.items())


def _identity(record: Record) -> Any:
    return record.get("_id") or (record["brandId"], record["tokenId"])


def _passport_key(collection: Collection[Any], records: list[Record]) -> dict[Any, Record]:
    found: dict[Any, Record] = {}
    for brand in {record["brandId"] for record in records}:
        tokens = [record["tokenId"] for record in records if record["brandId"] == brand]
        query = {"brandId": {"$eq": brand}, "tokenId": {"$in": tokens}}
        for stored in collection.find(query):
            found[(stored["brandId"], stored["tokenId"])] = stored
    return found


def _wallet_key(collection: Collection[Any], records: list[Record]) -> dict[Any, Record]:
    ids = [record["_id"] for record in records]
    return {stored["_id"]: stored for stored in collection.find({"_id": {"$in": ids}})}


def _records(path: Path, parse: Callable[[Record], Record]) -> Iterator[Record]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("a line must be a JSON object")
                yield parse(row)
            except KeyError as error:
                raise ImportLineError(f"{path.name} line {number}: missing {error}") from None
            except (ValueError, TypeError, AttributeError) as error:
                raise ImportLineError(f"{path.name} line {number}: {error}") from None


def _passport(row: Record) -> Record:
    brand, token = row["brandId"], row["tokenId"]
    if not isinstance(brand, str) or not isinstance(token, str):
        raise ValueError("brandId and tokenId must be strings")
    owner, product, tags = row.get("owner"), row.get("productId"), row.get("tags") or []
    if owner is not None and not isinstance(owner, str):
        raise ValueError("owner must be a string or null")
    if product is not None and not isinstance(product, str):
        raise ValueError("productId must be a string or null")
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ValueError("tags must be an array of strings")
    return {
        "brandId": brand,
        "tokenId": token,
        "productId": product,
        "tags": tags,
        "owner": owner.lower() if owner else None,
    }


def _wallet(row: Record) -> Record:
    address, last_active = row["address"], row.get("lastActiveAt")
    if not isinstance(address, str) or not address:
        raise ValueError("address must be a non-empty string")
    if row.get("country") is not None and not isinstance(row.get("country"), str):
        raise ValueError("country must be a string or null")
    return {
        "_id": address.lower(),
        "custodial": bool(row.get("custodial")),
        "country": row.get("country"),
        "lastActiveAt": instants.parse(last_active) if last_active else None,
    }
