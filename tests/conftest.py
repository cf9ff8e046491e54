"""Real servers for the tests: a MongoDB-speaking store and Redis, isolated per test.

The store is `MONGO_URL` when set (a real MongoDB), else an nx-27017 server started for the
session. Redis is `TEST_REDIS_URL` (default: database 9 of the local server). Without Redis
the tests that need it are skipped on a laptop, but fail under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from worker.embedded.processes import Group
from worker.embedded.servers import start_store
from worker.materialize.run import Context
from worker.settings import Settings
from worker.store.importer import import_files
from worker.store.mongo import Stores, connect, ensure_indexes, stores

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
REAL_AS_OF = "2022-10-20T00:00:00Z"


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("MONGO_URL"):
        yield os.environ["MONGO_URL"]
        return
    group = Group(tmp_path_factory.mktemp("store"))
    try:
        yield start_store(group)
    finally:
        group.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    try:
        redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.exceptions.RedisError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {url}: {error}")
    return url


def make_settings(mongo_url: str, redis_url: str, **overrides: object) -> Settings:
    run = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "mongo_url": mongo_url,
        "mongo_db": f"t_{run}",
        "redis_url": redis_url,
        "key_prefix": f"test{run}",
        "api_keys": "key-a:brand-a,key-b:brand-b",
        **overrides,
    }
    return Settings.model_validate(values)


@pytest.fixture
def settings(mongo_url: str, redis_url: str) -> Settings:
    """Settings of one test: its own database and its own Redis key prefix."""
    return make_settings(mongo_url, redis_url)


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    """Live connections for one test, over an empty database of its own."""
    for context in _context(settings):
        yield context
        context.stores.audiences.database.client.drop_database(settings.mongo_db)


def _context(settings: Settings) -> Iterator[Context]:
    client = connect(settings)
    cache = redis.Redis.from_url(settings.require_redis_url(), decode_responses=True)
    collections = stores(client, settings)
    ensure_indexes(collections)
    yield Context(settings, collections, cache)
    collections.audiences.delete_many({})
    keys = list(cache.scan_iter(f"{settings.key_prefix}:*"))
    if keys:
        cache.unlink(*keys)
    client.close()


@pytest.fixture(scope="session")
def real_db(mongo_url: str) -> Iterator[str]:
    """The name of a database holding the real data of ../shared/data/real, imported once."""
    settings = Settings(mongo_url=mongo_url, mongo_db=f"real_{uuid.uuid4().hex[:8]}")
    client = connect(settings)
    collections = stores(client, settings)
    import_files(collections, REAL_DATA / "passports.jsonl", REAL_DATA / "wallets.jsonl")
    yield settings.mongo_db
    client.drop_database(settings.mongo_db)
    client.close()


@pytest.fixture
def real_ctx(mongo_url: str, redis_url: str, real_db: str) -> Iterator[Context]:
    """A context over the real data; audiences written by the test are removed after it."""
    settings = make_settings(mongo_url, redis_url, mongo_db=real_db)
    yield from _context(settings)


@pytest.fixture
def real_stores(real_ctx: Context) -> Stores:
    return real_ctx.stores


FIGURES: list[str] = []


@pytest.fixture
def figure() -> Callable[[str], None]:
    """Record a measured figure; all of them are printed at the end of the run."""
    return FIGURES.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
