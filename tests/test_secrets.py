"""API keys and connection passwords appear in no log line, error, response or metric."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from bson import ObjectId
from celery import Celery
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from api_stub.app import create_app
from api_stub.backend import Backend, CeleryPublisher
from tests.conftest import make_settings
from worker.embedded.processes import Group, free_port
from worker.logs import JsonFormatter
from worker.materialize.run import Context, Request, materialize
from worker.metrics import AudienceCollector
from worker.store.mongo import connect, ensure_indexes, stores

PASSWORD = "r3dis-Pa55word-xyz"
KEY = "k3y-Secret-brand-a"


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis server of the test's own that demands a password."""
    group = Group(tmp_path)
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--requirepass", PASSWORD]  # fmt: skip
    group.start("redis", argv)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    group.wait_until("redis", lambda: _pings(url), timeout_s=20)
    yield url
    group.stop()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.exceptions.RedisError:
        return False


def test_no_secret_leaves_the_process(mongo_url: str, guarded_redis: str) -> None:
    settings = make_settings(mongo_url, guarded_redis, api_keys=f"{KEY}:brand-a")
    client = connect(settings)
    collections = stores(client, settings)
    ensure_indexes(collections)
    cache = redis.Redis.from_url(guarded_redis, decode_responses=True)
    ctx = Context(settings, collections, cache)
    collections.passports.insert_one(
        {"brandId": "brand-a", "tokenId": "1", "owner": "0x" + "1" * 40}
    )
    producer = Celery("secrets", broker=settings.broker())
    backend = Backend(
        settings, collections.audiences, cache, CeleryPublisher(producer, "q-secrets")
    )
    recorder = Recorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not `.level =`: it clears the loggers' caches
    answers: list[str] = []
    try:
        with TestClient(create_app(backend=backend)) as api:
            ok = api.post(
                "/audience/create", json={"name": "n"}, headers={"Authorization": f"Bearer {KEY}"}
            )
            audience_id = ok.json()["_id"]
            answers.append(ok.text)
            answers.append(
                api.get("/audience/list", headers={"Authorization": f"Bearer {KEY}x"}).text
            )
            answers.append(
                api.get("/audience/list", headers={"Authorization": f"Bearer {PASSWORD}"}).text
            )
        materialize(ctx, Request(ObjectId(audience_id), as_of=datetime.now(UTC)))
        registry = CollectorRegistry()
        registry.register(AudienceCollector(ctx, cache))
        answers.append(generate_latest(registry).decode())
        answers.append(repr(settings))
        time.sleep(0.2)
    finally:
        root.removeHandler(recorder)
        root.setLevel(level)
        client.drop_database(settings.mongo_db)
        client.close()
    events = {json.loads(line)["event"] for line in recorder.lines}
    # The run happened and the message went out through the password-protected broker.
    assert {"run.end", "publish.sent"} <= events
    everything = "\n".join([*recorder.lines, *answers])
    assert PASSWORD not in everything
    assert KEY not in everything
