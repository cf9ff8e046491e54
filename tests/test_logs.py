"""Logs are structured events with ids, revisions and durations, and never carry secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from bson import ObjectId
from fastapi.testclient import TestClient

from api_stub.app import create_app
from api_stub.backend import Backend
from worker.logs import JsonFormatter
from worker.materialize.run import Context, Request, materialize

OWNER = "0x" + "c" * 40


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class NoPublisher:
    def materialize(self, audience_id: str, revision: int, as_of: str | None = None) -> bool:
        return True


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    # The level the product runs at (LOG_LEVEL); library debug logs echo whole commands.
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_full_run_logs_json_events_without_keys_or_recipients(
    ctx: Context, recorder: Recorder
) -> None:
    tokens = [f"90{n:04d}" for n in range(30)]
    ctx.stores.passports.insert_many(
        {"brandId": "brand-a", "tokenId": t, "tags": ["t"], "owner": OWNER} for t in tokens
    )
    backend = Backend(ctx.settings, ctx.stores.audiences, ctx.redis, NoPublisher())
    with TestClient(create_app(backend=backend)) as client:
        headers = {"Authorization": "Bearer key-a"}
        created = client.post("/audience/create", json={"name": "n", "tags": "t"}, headers=headers)
        audience_id = created.json()["_id"]
        client.get("/audience/list", headers={"Authorization": "Bearer wrong-secret-key"})
        outcome = materialize(ctx, Request(ObjectId(audience_id), as_of=datetime.now(UTC)))
        assert outcome.count_nft == 30

    events = [json.loads(line) for line in recorder.lines]
    ends = [e for e in events if e["event"] == "run.end"]
    assert ends and ends[0]["audience_id"] == audience_id
    assert {"revision", "duration_ms", "count_nft", "count_owner"} <= set(ends[0])
    assert any(e["event"] == "audience.created" and e["revision"] == 1 for e in events)
    everything = "\\n".join(recorder.lines)
    for secret in ("key-a", "wrong-secret-key", ctx.settings.api_keys):
        assert secret not in everything
    leaked = [line for line in recorder.lines if any(t in line for t in tokens)]
    assert leaked == []
