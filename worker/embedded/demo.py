"""The embedded demo: local servers, the real data, audiences of every kind, a table.

Everything it starts runs in child processes of one group, stopped on exit or Ctrl-C.
"""

from __future__ import annotations

import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from redis import Redis
from rich.console import Console
from rich.table import Table

from worker.cli.operate import import_with_progress
from worker.embedded.audiences import DEMO_AUDIENCES, describe
from worker.embedded.processes import (
    Group,
    StartFailed,
    free_port,
    group_in,
    interrupt_on_signals,
)
from worker.embedded.servers import start_cache, start_store
from worker.settings import Settings, get_settings
from worker.store.mongo import connect

# Piped output gets room for the whole table rather than the 80 columns of a dumb terminal.
console = Console(width=None if sys.stdout.isatty() else 160)
FINAL_STATES = ("ready", "failed")
# The demo's database, key prefix and queue.
DEMO = "audience_demo"


def run(data_dir: Path, as_of: str | None, keep_running: bool, timeout_s: float = 300) -> int:
    interrupt_on_signals()
    with group_in("audience-demo-") as group:
        try:
            api_url, keys = _start(group, data_dir)
            rows = _create_and_wait(group, api_url, keys, as_of, timeout_s)
            console.print(_table(rows))
            if keep_running:
                _serve(group, api_url, keys)
            return 0 if all(row["state"] == "ready" for row in rows) else 1
        except KeyboardInterrupt:
            # Said before the servers stop, which takes a moment; the command's exit code
            # then names the signal.
            console.print("stopping")
            raise
        except StartFailed as error:
            console.print(f"[red]{error}[/red]")
            return 1


def _start(group: Group, data_dir: Path) -> tuple[str, dict[str, str]]:
    configured = get_settings()
    with console.status("starting the store and Redis"):
        mongo_url = configured.mongo_url or start_store(group)
        redis_url = configured.redis_url or start_cache(group)
    if configured.mongo_url:
        _drop_last_demo(mongo_url)
    if configured.redis_url:
        _forget_last_demo(redis_url)
    brands = sorted({brand for brand, _ in DEMO_AUDIENCES})
    keys = {brand: secrets.token_urlsafe(18) for brand in brands}
    # On servers of the user's own, the demo keeps to a database, a key prefix and a queue
    # of its own, so that it neither touches a deployment's data nor takes its tasks.
    env = {
        "MONGO_URL": mongo_url,
        "MONGO_DB": DEMO,
        "REDIS_URL": redis_url,
        "BROKER_URL": configured.broker_url or redis_url,
        "KEY_PREFIX": DEMO,
        "QUEUE": DEMO,
        "API_KEYS": ",".join(f"{key}:{brand}" for brand, key in keys.items()),
    }
    import_with_progress(Settings(mongo_url=mongo_url, mongo_db=DEMO), data_dir)
    port = free_port()
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "worker.celery_app"]
    worker = [*celery, "worker", "-Q", DEMO, "-c", "2", "-l", "INFO"]
    # Cold shutdown: the demo's data goes with it, so the runs in hand are of no use.
    group.start("worker", worker, env, signal.SIGQUIT)
    group.start("beat", [*celery, "beat", "-s", str(group.workdir / "beat-schedule")], env)
    group.start("api", [python, "-m", "uvicorn", "api_stub.main:app", "--port", str(port)], env)
    api_url = f"http://127.0.0.1:{port}"
    with console.status("starting the worker and the API"):
        group.wait_until("the API", lambda: _api_answers(api_url))
    return api_url, keys


def _api_answers(api_url: str) -> bool:
    try:
        return httpx.get(f"{api_url}/audience/list", timeout=1).status_code == 401
    except httpx.HTTPError:
        return False


def _drop_last_demo(mongo_url: str) -> None:
    """Start from an empty demo database, so that a store of the user's own does not pile up
    the audiences of every earlier demo."""
    client = connect(Settings(mongo_url=mongo_url))
    try:
        client.drop_database(DEMO)
    finally:
        client.close()


def _forget_last_demo(redis_url: str) -> None:
    """Remove an earlier demo's keys (results, figures, counters), whose audiences went with
    its database."""
    cache = Redis.from_url(redis_url)
    try:
        stale = list(cache.scan_iter(f"{DEMO}:*", count=1000))
        for start in range(0, len(stale), 1000):
            cache.unlink(*stale[start : start + 1000])
    finally:
        cache.close()


def _create_and_wait(
    group: Group, api_url: str, keys: dict[str, str], as_of: str | None, timeout_s: float
) -> list[dict[str, Any]]:
    params = {"asOf": as_of} if as_of else {}
    pending = []
    for brand, body in DEMO_AUDIENCES:
        with _client(api_url, keys[brand]) as http:
            response = http.post("/audience/create", json=body, params=params)
            response.raise_for_status()
            pending.append((brand, body, response.json()["_id"], time.monotonic()))
    return [
        _wait(group, api_url, keys[b], body, aid, t0, timeout_s) for b, body, aid, t0 in pending
    ]


def _wait(
    group: Group,
    api_url: str,
    key: str,
    body: dict[str, Any],
    audience_id: str,
    t0: float,
    timeout_s: float,
) -> dict[str, Any]:
    with _client(api_url, key) as http, console.status(f"materializing {body['name']}"):
        doc = http.get(f"/audience/{audience_id}").json()
        while doc["materialization"]["state"] not in FINAL_STATES:
            if time.monotonic() - t0 > timeout_s:
                break
            time.sleep(0.2)
            group.check()  # a dead worker, store or API ends the wait at once
            doc = http.get(f"/audience/{audience_id}").json()
        waited = time.monotonic() - t0
        recipients = _count_recipients(http, audience_id)
    state = doc["materialization"]["state"]
    return {"body": body, "doc": doc, "state": state, "recipients": recipients, "waited_s": waited}


def _count_recipients(http: httpx.Client, audience_id: str) -> int | None:
    total, cursor = 0, "0"
    while True:
        params = {"cursor": cursor, "count": "10000"}
        response = http.get(f"/audience/{audience_id}/recipients", params=params)
        if response.status_code != 200:
            return None
        page = response.json()
        total += len(page["recipients"])
        cursor = page["cursor"]
        if cursor == "0":
            return total


def _client(api_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Audiences")
    for column in ("brand", "name", "rule"):
        table.add_column(column)
    for column in ("countNFT", "countOwner", "recipients", "state", "run ms", "waited s"):
        table.add_column(column, justify="right")
    for row in rows:
        doc = row["doc"]
        table.add_row(
            doc["brandId"],
            doc["name"],
            describe(row["body"]),
            str(doc["countNFT"]),
            str(doc["countOwner"]),
            str(row["recipients"]),
            row["state"],
            str(doc["materialization"]["durationMs"]),
            f"{row['waited_s']:.2f}",
        )
    return table


def _serve(group: Group, api_url: str, keys: dict[str, str]) -> None:
    console.print(f"\nThe API is at {api_url}; process logs are in {group.workdir}")
    for brand, key in keys.items():
        console.print(f"  brand {brand}: Authorization: Bearer {key}")
    console.print("Press Ctrl-C to stop everything the demo started.")
    while True:
        time.sleep(1)
        # If any part dies (the store, Redis, the worker, beat, the API), say so and stop.
        group.check()
