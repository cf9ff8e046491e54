"""The store round trips a run reports are the requests the driver sent for its passports and
wallets, counted on the side by pymongo's command monitoring, and each is one reply."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from worker.audience.fields import AudienceCreate
from worker.bench import synthetic
from worker.bench.measure import audience_set
from worker.materialize.partition import Part, run_part
from worker.materialize.run import Context, Request, materialize
from worker.store import audiences
from worker.store.mongo import stores

AS_OF = datetime(2022, 10, 20, tzinfo=UTC)
SIZE = 2_000
READ = ("passports", "wallets")  # the audience document's own reads and writes are apart


class Requests(monitoring.CommandListener):
    """The commands sent for the passport and wallet collections, by name."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        collection = event.command.get("collection" if name == "getMore" else name)
        if collection in READ:
            self.sent.append(name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def watched(ctx: Context) -> Iterator[tuple[Context, Requests]]:
    """A synthetic brand, read through a client whose every request is seen."""
    synthetic.load(ctx.stores, SIZE)
    requests = Requests()
    client: MongoClient[Any] = MongoClient(
        ctx.settings.require_mongo_url(), tz_aware=True, event_listeners=[requests]
    )
    # Small batches and chunks, so every kind of read is made many times over.
    settings = ctx.settings.model_copy(
        update={"batch_size": 150, "in_chunk_size": 70, "owner_first": "auto"}
    )
    yield Context(settings, stores(client, settings), ctx.redis), requests
    client.close()


def _insert(ctx: Context, name: str) -> Any:
    body = dict(audience_set(SIZE))[name]
    fields = AudienceCreate.model_validate({"name": name, **body}).stored()
    doc = audiences.new_document(synthetic.BRAND, fields, AS_OF)
    audiences.insert(ctx.stores.audiences, doc)
    return doc["_id"]


@pytest.mark.parametrize("name", [name for name, _ in audience_set(SIZE)])
def test_a_run_reports_the_requests_it_sent(watched: tuple[Context, Requests], name: str) -> None:
    ctx, requests = watched
    audience_id = _insert(ctx, name)
    requests.sent.clear()

    outcome = materialize(ctx, Request(audience_id, as_of=AS_OF))

    assert outcome.status == "done"
    assert outcome.store_round_trips == len(requests.sent) > 0
    assert "getMore" not in requests.sent  # every request is answered in one reply


def test_a_split_run_reports_its_plan_and_every_part(watched: tuple[Context, Requests]) -> None:
    ctx, requests = watched
    sent: list[Part] = []
    settings = ctx.settings.model_copy(update={"partition_size": 300, "owner_first": "passports"})
    split = Context(settings, ctx.stores, ctx.redis, send_parts=sent.extend)
    audience_id = _insert(ctx, "inactive 365 d")
    requests.sent.clear()

    assert materialize(split, Request(audience_id, as_of=AS_OF)).status == "partitioned"
    outcomes = [run_part(split, part) for part in sent]

    assert len(sent) > 1 and outcomes[-1].status == "done"
    assert outcomes[-1].store_round_trips == len(requests.sent)
