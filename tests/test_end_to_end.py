"""The whole path with every part real: HTTP in, a Celery worker process, Redis, the store.

The API (uvicorn) and the worker (celery) run as child processes against the session's
store server, loaded with the real data, and the test's Redis database.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from bson import ObjectId
from pymongo import MongoClient

from tests.conftest import REAL_AS_OF
from worker.embedded.processes import Group, free_port

pytestmark = pytest.mark.e2e

KEYS = {"cryptopunks": "e2e-punks-key", "poap-devcon": "e2e-poap-key"}


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, mongo_url: str, redis_url: str, real_db: str
) -> Iterator[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    env = {
        "MONGO_URL": mongo_url,
        "MONGO_DB": real_db,
        "AUDIENCES_COLLECTION": f"audiences_{run}",
        "REDIS_URL": redis_url,
        "QUEUE": f"audiences-{run}",
        "KEY_PREFIX": f"e2e{run}",
        "API_KEYS": ",".join(f"{key}:{brand}" for brand, key in KEYS.items()),
    }
    group = Group(Path(tmp_path_factory.mktemp("e2e")))
    port = free_port()
    celery = [sys.executable, "-m", "celery", "-A", "worker.celery_app"]
    group.start("worker", [*celery, "worker", "-Q", env["QUEUE"], "-c", "1", "-l", "INFO"], env)
    uvicorn = [sys.executable, "-m", "uvicorn", "api_stub.main:app", "--port", str(port)]
    group.start("api", uvicorn, env)
    # Flower as the Procfile runs it, with its HTTP API open to this test.
    flower_port = free_port()
    flower_env = {**env, "FLOWER_UNAUTHENTICATED_API": "true"}
    group.start("flower", [*celery, "flower", f"--port={flower_port}"], flower_env)
    metrics_port = free_port()
    metrics = ["audience-worker", "metrics", "--port", str(metrics_port), "--host", "127.0.0.1"]
    group.start("metrics", [str(Path(sys.executable).with_name(metrics[0])), *metrics[1:]], env)
    url = f"http://127.0.0.1:{port}"
    try:
        group.wait_until("the API", lambda: _answers(url), timeout_s=60)
        flower = f"http://127.0.0.1:{flower_port}"
        group.wait_until("Flower", lambda: _flower_answers(flower), timeout_s=60)
        client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
        documents = client[real_db][env["AUDIENCES_COLLECTION"]]
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        group.wait_until("metrics", lambda: _flower_answers_url(metrics_url), timeout_s=30)
        yield {
            "metrics": metrics_url,
            "env": env,
            "url": url,
            "flower": flower,
            "prefix": env["KEY_PREFIX"],
            "group": group,
            "documents": documents,
        }
        client.close()
    finally:
        group.stop()
        cache = redis.Redis.from_url(redis_url)
        # The product's keys, and the broker's own keys for this test's queue.
        stale = [
            *cache.scan_iter(f"{env['KEY_PREFIX']}:*"),
            *cache.scan_iter(f"*{env['QUEUE']}*"),
        ]
        if stale:
            cache.unlink(*stale)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/audience/list", timeout=1).status_code == 401
    except httpx.HTTPError:
        return False


def _flower_answers(url: str) -> bool:
    return _flower_answers_url(f"{url}/api/workers")


def _flower_answers_url(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _client(live: dict[str, Any], brand: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[brand]}"}
    return httpx.Client(base_url=live["url"], headers=headers, timeout=30)


def _settled(http: httpx.Client, audience_id: str, revision: int, live: dict[str, Any]) -> Any:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        live["group"].check()
        doc = http.get(f"/audience/{audience_id}").json()
        state = doc["materialization"]
        if state["state"] in ("ready", "failed") and state["revision"] == revision:
            return doc
        time.sleep(0.2)
    raise AssertionError(f"audience {audience_id} did not settle: {doc}")


def _redis_view(redis_url: str, prefix: str, audience_id: str) -> dict[str, Any]:
    cache = redis.Redis.from_url(redis_url, decode_responses=True)
    base = f"{prefix}:{{{audience_id}}}"
    return {
        "recipients": cache.smembers(f"{base}:recipients"),
        "owners": cache.scard(f"{base}:owners"),
        "meta": cache.hgetall(f"{base}:meta"),
        "ttls": [cache.ttl(f"{base}:{name}") for name in ("recipients", "owners", "meta")],
    }


# Right values on the real data as of 2022-10-20 (the table; the cross-check test
# derives them again independently).
CASES = [
    ("cryptopunks", {"name": "Earring", "tags": "Earring", "tagRule": "or"}, (1631, 1078, 1631)),
    (
        "cryptopunks",
        {"name": "both", "tags": ["Earring", "Cigarette"], "tagRule": "all", "uniqueOwner": True},
        (134, 123, 123),
    ),
    (
        "cryptopunks",
        {
            "name": "active custodial France/Spain",
            "tagRule": "or",
            "countries": "France|Spain",
            "custodialWallet": "yes",
            "isWalletActiveSinceNumberOfDays": 365,
        },
        (201, 87, 201),
    ),
    (
        "poap-devcon",
        {"name": "two events", "tagRule": "productIds", "productIds": ["67378", "67695"]},
        (111, 108, 111),
    ),
]


def test_created_audiences_are_materialized_by_the_worker(
    live: dict[str, Any], redis_url: str
) -> None:
    created = []
    for brand, body, expected in CASES:
        with _client(live, brand) as http:
            response = http.post("/audience/create", json=body, params={"asOf": REAL_AS_OF})
            assert response.status_code == 200, response.text
            created.append((brand, response.json()["_id"], expected))
    for brand, audience_id, (count_nft, count_owner, recipients) in created:
        with _client(live, brand) as http:
            doc = _settled(http, audience_id, 1, live)
        assert doc["materialization"]["state"] == "ready"
        assert doc["materialization"]["evaluatedAt"] == "2022-10-20T00:00:00.000Z"
        assert (doc["countNFT"], doc["countOwner"]) == (count_nft, count_owner)
        view = _redis_view(redis_url, live["prefix"], audience_id)
        assert len(view["recipients"]) == recipients
        assert view["owners"] == count_owner
        assert view["meta"]["revision"] == "1"
        assert view["meta"]["countNFT"] == str(count_nft)
        assert view["meta"]["evaluatedAt"] == "2022-10-20T00:00:00.000Z"
        assert all(0 < ttl <= 7 * 24 * 3600 for ttl in view["ttls"])


def test_an_update_rematerializes_and_a_bad_one_changes_nothing(
    live: dict[str, Any], redis_url: str
) -> None:
    with _client(live, "cryptopunks") as http:
        body = {"name": "Earring", "tags": "Earring"}
        audience_id = http.post("/audience/create", json=body, params={"asOf": REAL_AS_OF})
        audience_id = audience_id.json()["_id"]
        _settled(http, audience_id, 1, live)

        bad = http.patch(f"/audience/{audience_id}", json={"tags": ["Earring", " "]})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["param"] == "tags"
        assert http.get(f"/audience/{audience_id}").json()["revision"] == 1

        change = {"tags": ["Earring", "Cigarette"], "tagRule": "all", "uniqueOwner": True}
        updated = http.patch(f"/audience/{audience_id}", json=change, params={"asOf": REAL_AS_OF})
        assert updated.status_code == 200
        assert updated.json()["revision"] == 2
        doc = _settled(http, audience_id, 2, live)
    assert (doc["countNFT"], doc["countOwner"]) == (134, 123)
    view = _redis_view(redis_url, live["prefix"], audience_id)
    assert len(view["recipients"]) == 123
    assert view["meta"]["revision"] == "2"


def test_recipients_are_read_back_through_the_api(live: dict[str, Any]) -> None:
    with _client(live, "poap-devcon") as http:
        body = {"name": "two events", "tagRule": "productIds", "productIds": "67378"}
        audience_id = http.post("/audience/create", json=body).json()["_id"]
        doc = _settled(http, audience_id, 1, live)
        seen: list[str] = []
        cursor = "0"
        while True:
            page = http.get(
                f"/audience/{audience_id}/recipients", params={"cursor": cursor, "count": 7}
            ).json()
            seen += page["recipients"]
            cursor = page["cursor"]
            if cursor == "0":
                break
        deleted = http.delete(f"/audience/{audience_id}")
        assert deleted.status_code == 204
        assert http.get(f"/audience/{audience_id}").status_code == 404
    assert len(seen) == len(set(seen)) == doc["countNFT"]


def test_a_burst_of_100_updates_ends_on_the_last_revision_after_few_runs(
    live: dict[str, Any], redis_url: str, figure: Callable[[str], None]
) -> None:
    with _client(live, "cryptopunks") as http:
        body = {"name": "burst", "tags": "Earring"}
        audience_id = http.post("/audience/create", json=body, params={"asOf": REAL_AS_OF})
        audience_id = audience_id.json()["_id"]
        _settled(http, audience_id, 1, live)
        # Alternate between two rules; the 100th update leaves tags Earring + Cigarette.
        for n in range(100):
            tags = ["Earring", "Cigarette"] if n % 2 else ["Earring"]
            response = http.patch(f"/audience/{audience_id}", json={"tags": tags, "tagRule": "all"})
            assert response.status_code == 200
        assert response.json()["revision"] == 101
        doc = _settled(http, audience_id, 101, live)
    runs = live["documents"].find_one({"_id": ObjectId(audience_id)})["materialization"]
    figure(f"burst of 100 updates: {runs['claimSeq'] - 1} runs after the first")
    assert doc["materialization"]["state"] == "ready"
    # Earring and Cigarette on the same punk, evaluated now (no activity rule): 134 of them.
    assert doc["countNFT"] == 134
    assert runs["claimSeq"] - 1 <= 5
    assert _redis_view(redis_url, live["prefix"], audience_id)["meta"]["revision"] == "101"


def test_flower_shows_the_worker_and_a_materialize_task_with_its_arguments(
    live: dict[str, Any],
) -> None:
    with _client(live, "poap-devcon") as http:
        body = {"name": "for flower", "tagRule": "productIds", "productIds": "67695"}
        audience_id = http.post("/audience/create", json=body).json()["_id"]
        _settled(http, audience_id, 1, live)
    deadline = time.monotonic() + 30
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        tasks = httpx.get(
            f"{live['flower']}/api/tasks", params={"taskname": "audiences.materialize"}, timeout=5
        ).json()
        seen = [t for t in tasks.values() if audience_id in str(t.get("kwargs"))]
        if any(t["state"] == "SUCCESS" for t in seen):
            break
        time.sleep(0.5)
    assert any(t["state"] == "SUCCESS" for t in seen), seen
    assert "'revision': 1" in str(seen[0]["kwargs"])
    # The task names the worker that ran it, and Flower can inspect that worker.
    worker = next(t["worker"] for t in seen if t["state"] == "SUCCESS")
    assert str(worker).startswith("celery@")
    workers = httpx.get(f"{live['flower']}/api/workers", params={"refresh": "1"}, timeout=15).json()
    assert worker in workers


def test_change_events_rerun_only_affected_audiences_once_per_window(
    live: dict[str, Any], redis_url: str, figure: Callable[[str], None]
) -> None:
    from celery import Celery

    from worker.audience.fields import AudienceCreate
    from worker.store import audiences as documents

    # 200 token-id audiences: 20 on punks that the events touch, 180 that nothing touches.
    touched = [str(n) for n in range(1000, 1020)]
    ids: dict[str, bool] = {}
    for n in range(200):
        brand = "cryptopunks" if n < 100 else "poap-devcon"
        token = touched[n] if n < 20 else str(900_000 + n)
        fields = AudienceCreate.model_validate(
            {"name": f"change {n}", "tagRule": "tokenIds", "tokenIds": token}
        ).stored()
        doc = documents.new_document(brand, fields, datetime.now(UTC))
        live["documents"].insert_one(doc)
        ids[str(doc["_id"])] = n < 20
    producer = Celery("changes", broker=redis_url)
    producer.conf.task_serializer = "json"
    queue = live["env"]["QUEUE"]
    for n in range(100):
        token = touched[n % 20]
        producer.send_task("passports.changed", args=["cryptopunks", [token]], queue=queue)

    def runs() -> dict[str, int]:
        found = live["documents"].find({"_id": {"$in": [ObjectId(i) for i in ids]}})
        return {str(d["_id"]): d["materialization"].get("claimSeq", 0) for d in found}

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(runs().values()) < 20:
        time.sleep(0.5)
    time.sleep(6)  # a further debounce window: nothing more may run
    done = runs()
    affected = sum(1 for i, hit in ids.items() if hit and done[i] > 0)
    figure(
        f"change events: 100 events touching 20 of 200 audiences: {sum(done.values())} runs, "
        f"{affected} audiences re-run"
    )
    assert all(done[i] == (1 if hit else 0) for i, hit in ids.items())


NODE_PRODUCER = Path(__file__).parent / "node"


def test_a_node_producer_using_celery_node_gets_an_audience_materialized(
    live: dict[str, Any], redis_url: str
) -> None:
    import shutil
    import subprocess

    from worker.audience.fields import AudienceCreate
    from worker.store import audiences as documents

    if not shutil.which("node") or not (NODE_PRODUCER / "node_modules" / "celery-node").exists():
        if os.environ.get("CI"):
            raise AssertionError("node and tests/node/node_modules are needed (make test)")
        pytest.skip("node or celery-node is not installed (make test installs it)")
    fields = AudienceCreate.model_validate({"name": "from node", "tags": "Earring"}).stored()
    doc = documents.new_document("cryptopunks", fields, datetime.now(UTC))
    live["documents"].insert_one(doc)
    audience_id = str(doc["_id"])
    argv = ["node", "publish.js", redis_url, live["env"]["QUEUE"], audience_id, "1", REAL_AS_OF]
    subprocess.run(argv, cwd=NODE_PRODUCER, check=True, timeout=60)
    with _client(live, "cryptopunks") as http:
        settled = _settled(http, audience_id, 1, live)
    assert settled["materialization"]["state"] == "ready"
    assert (settled["countNFT"], settled["countOwner"]) == (1631, 1078)


def test_prometheus_reads_states_runs_and_backlog_over_http(live: dict[str, Any]) -> None:
    with _client(live, "poap-devcon") as http:
        body = {"name": "for metrics", "tagRule": "productIds", "productIds": "67378"}
        audience_id = http.post("/audience/create", json=body).json()["_id"]
        _settled(http, audience_id, 1, live)
    text = httpx.get(live["metrics"], timeout=10).text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['audience_worker_audiences{state="ready"}'] >= 1
    assert samples['audience_worker_runs_total{status="done"}'] >= 1
    assert samples["audience_worker_run_duration_seconds_count"] >= 1
    assert "audience_worker_queue_backlog" in samples
    assert "audience_worker_oldest_result_age_seconds" in samples
