"""The MongoDB connection and the indexes the queries rely on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.cursor import Cursor
from pymongo.database import Database

from worker.settings import Settings

Document = dict


@dataclass(frozen=True)
class Stores:
    """The three collections of one database."""

    audiences: Collection[Document]
    passports: Collection[Document]
    wallets: Collection[Document]


def connect(settings: Settings) -> MongoClient[Document]:
    return MongoClient(
        settings.require_mongo_url(),
        tz_aware=True,
        serverSelectionTimeoutMS=10_000,
        connectTimeoutMS=10_000,
        appname="audience-worker",
    )


def stores(client: MongoClient[Document], settings: Settings) -> Stores:
    db: Database[Document] = client[settings.mongo_db]
    return Stores(
        audiences=db[settings.audiences_collection],
        passports=db[settings.passports_collection],
        wallets=db[settings.wallets_collection],
    )


def ensure_indexes(s: Stores) -> None:
    """Create what the scans and lookups use; a no-op when they exist."""
    # Unique per brand: the import and token id lookups use it.
    s.passports.create_index([("brandId", ASCENDING), ("tokenId", ASCENDING)], unique=True)
    s.passports.create_index([("brandId", ASCENDING), ("tags", ASCENDING)])
    s.passports.create_index([("brandId", ASCENDING), ("productId", ASCENDING)])
    s.passports.create_index([("owner", ASCENDING)])
    # Every passport scan walks this one, in owner order (see passports.scan).
    s.passports.create_index([("brandId", ASCENDING), ("owner", ASCENDING), ("tokenId", ASCENDING)])
    s.audiences.create_index([("brandId", ASCENDING), ("createdAt", ASCENDING)])


def whole(cursor: Cursor[Any], most: int) -> Cursor[Any]:
    """At most `most` documents, in one reply: left to its default, the driver asks for the
    first 101 and then comes back for the rest, a second round trip per request."""
    return cursor.limit(most).batch_size(most)
