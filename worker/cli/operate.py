"""The operator's subcommands: import, materialize one audience, refresh, status."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from worker import messages
from worker.errors import InvalidMessage
from worker.materialize import refresh
from worker.materialize.run import Context, materialize
from worker.resources import context
from worker.settings import Settings, get_settings
from worker.store.importer import import_files
from worker.store.mongo import connect, stores

# Piped output gets room for whole rows rather than the 80 columns of a dumb terminal.
console = Console(width=None if sys.stdout.isatty() else 200)


def import_data(data_dir: Path) -> int:
    import_with_progress(get_settings(), data_dir)
    return 0


def import_with_progress(settings: Settings, data_dir: Path) -> None:
    passports, wallets = data_dir / "passports.jsonl", data_dir / "wallets.jsonl"
    total = sum(1 for _ in passports.open()) + sum(1 for _ in wallets.open())
    client = connect(settings)
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("importing passports and wallets", total=total)
            counts = import_files(
                stores(client, settings), passports, wallets, lambda n: progress.advance(task, n)
            )
    finally:
        client.close()
    console.print(f"imported {counts.passports} passports and {counts.wallets} wallets")


def materialize_one(audience_id: str, as_of: str | None) -> int:
    try:
        request = messages.materialize_request(audience_id, None, as_of)
    except InvalidMessage as error:
        console.print(f"[red]{error}[/red]")
        return 2
    ctx = context()
    doc = ctx.stores.audiences.find_one({"_id": request.audience_id}, {"brandId": 1})
    if doc is None:
        console.print(f"[red]no audience {audience_id}[/red]")
        return 1
    total = ctx.stores.passports.count_documents({"brandId": {"$eq": doc["brandId"]}})
    with Progress(console=console) as progress:
        bar = progress.add_task("passports read", total=total or None)
        watched = Context(
            ctx.settings, ctx.stores, ctx.redis, lambda read: progress.update(bar, completed=read)
        )
        # A run asked for by hand is deliberate: like a message with as_of, it always runs.
        forced = replace(request, as_of=request.as_of or datetime.now(UTC))
        outcome = materialize(watched, forced)
        progress.update(bar, completed=total)
    console.print(
        f"{outcome.status}: countNFT {outcome.count_nft}, countOwner {outcome.count_owner}, "
        f"recipients {outcome.recipients}, revision {outcome.revision}, "
        f"{outcome.duration_ms} ms"
    )
    return 0 if outcome.status == "done" else 1


def refresh_now() -> int:
    from worker.tasks import ask

    due = refresh.due(context())
    for audience_id, revision in due:
        ask(audience_id, revision)
    console.print(f"enqueued {len(due)} audiences")
    return 0


def status(brand: str | None, limit: int) -> int:
    ctx = context()
    query = {"brandId": brand} if brand else {}
    docs = ctx.stores.audiences.find(query).sort("createdAt", 1).limit(max(1, limit))
    table = Table(title="Audiences")
    for column in ("id", "brand", "name", "state", "revision", "countNFT", "countOwner"):
        table.add_column(column)
    table.add_column("age")
    table.add_column("last error")
    now_ms = int(time.time() * 1000)
    for doc in docs:
        state = doc.get("materialization") or {}
        finished = state.get("finishedAtMs")
        age = _age((now_ms - finished) / 1000) if finished else "never"
        table.add_row(
            str(doc["_id"]),
            doc.get("brandId", ""),
            doc.get("name", ""),
            str(state.get("state")),
            f"{state.get('revision')}/{doc.get('revision')}",
            str(doc.get("countNFT")),
            str(doc.get("countOwner")),
            age,
            (state.get("error") or "")[:60],
        )
    console.print(table)
    return 0


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def serve_metrics(host: str, port: int) -> int:
    from prometheus_client import CollectorRegistry, start_http_server
    from redis import Redis

    from worker.metrics import AudienceCollector

    ctx = context()
    registry = CollectorRegistry()
    broker = Redis.from_url(ctx.settings.broker(), decode_responses=True)
    registry.register(AudienceCollector(ctx, broker))
    start_http_server(port, addr=host, registry=registry)
    console.print(f"serving Prometheus metrics on http://{host}:{port}/metrics")
    while True:
        time.sleep(3600)
