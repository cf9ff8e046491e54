"""Faults, with real processes: workers killed mid-run, Redis restarted, the store away.

Each test prints its figure in the run's summary. Right values come from the independent
evaluator of the cross-check test, never from the worker itself.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from bson import ObjectId
from celery import Celery
from pymongo import MongoClient
from pymongo.collection import Collection

from tests.test_crosscheck import evaluate
from worker.audience.fields import AudienceCreate
from worker.embedded.processes import Group
from worker.embedded.servers import start_cache, start_store
from worker.settings import Settings
from worker.store import audiences
from worker.store.mongo import ensure_indexes, stores

pytestmark = pytest.mark.e2e

AS_OF = datetime(2022, 10, 20, tzinfo=UTC)
AS_OF_TEXT = "2022-10-20T00:00:00Z"
STORE_OUTAGE_S = float(os.environ.get("FAULT_STORE_OUTAGE_S", "60"))
# Ten audiences over both brands and every kind of rule; the slower ones give a kill time
# to land mid-run.
BODIES: list[tuple[str, dict[str, Any]]] = [
    ("cryptopunks", {"tags": "Earring"}),
    ("cryptopunks", {"tags": ["Earring", "Cigarette"], "tagRule": "all", "uniqueOwner": True}),
    (
        "cryptopunks",
        {
            "countries": "France|Spain",
            "custodialWallet": "yes",
            "isWalletActiveSinceNumberOfDays": 365,
        },
    ),
    (
        "cryptopunks",
        {
            "custodialWallet": "no",
            "walletActivity": "inactive",
            "isWalletActiveSinceNumberOfDays": 365,
        },
    ),
    ("cryptopunks", {"tagRule": "productIds", "productIds": ["punk-human-male"]}),
    ("poap-devcon", {"tagRule": "productIds", "productIds": ["67378", "67695"]}),
    ("poap-devcon", {"uniqueOwner": True}),
    ("poap-devcon", {"custodialWallet": "yes"}),
    ("poap-devcon", {"countries": ["Japan", "Germany"], "uniqueOwner": True}),
    ("cryptopunks", {"tagRule": "any", "tags": ["Hoodie", "Mohawk", "Cap"]}),
]


class Cluster:
    """A worker and a beat process over one store and one Redis of the test's own."""

    def __init__(self, workdir: Path, mongo_url: str, db: str, **overrides: str) -> None:
        self.workdir = workdir
        self.cache = Group(workdir / "redis")
        self.cache.workdir.mkdir(exist_ok=True)
        self.redis_url = start_cache(self.cache)
        run = uuid.uuid4().hex[:8]
        self.env = {
            "MONGO_URL": mongo_url,
            "MONGO_DB": db,
            "AUDIENCES_COLLECTION": f"faults_{run}",
            "REDIS_URL": self.redis_url,
            "QUEUE": f"faults-{run}",
            "KEY_PREFIX": f"faults{run}",
            "LEASE_S": "10",
            "REFRESH_EVERY_S": "1",
            "REQUEUE_AFTER_S": "2",
            "FRESH_S": "0",
            "SETTLE_MS": "0",
            "MAX_FAILURES": "2",
            "RETRY_BASE_S": "1",
            "RETRY_MAX_S": "2",
            **overrides,
        }
        self.client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
        self.documents: Collection[dict[str, Any]] = self.client[db][
            self.env["AUDIENCES_COLLECTION"]
        ]
        self.producer = Celery("faults", broker=self.redis_url)
        self.producer.conf.update(task_serializer="json", broker_connection_retry=True)
        self.worker = Group(workdir / "worker")
        self.beat = Group(workdir / "beat")
        for group in (self.worker, self.beat):
            group.workdir.mkdir(exist_ok=True)

    def start_worker(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "worker.celery_app"]
        argv = [*celery, "worker", "-Q", self.env["QUEUE"], "-c", "1", "-l", "INFO"]
        self.worker.start("worker", argv, self.env)

    def start_beat(self) -> None:
        schedule = str(self.beat.workdir / "schedule")
        argv = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "beat", "-s", schedule]
        self.beat.start("beat", argv, self.env)

    def kill_worker(self) -> None:
        for _, child in self.worker.children:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        self.worker.children.clear()

    def restart_redis(self, down_s: float) -> None:
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        self.cache.stop()
        time.sleep(down_s)
        start_cache(self.cache, port)

    def create(self, brand: str, body: dict[str, Any]) -> str:
        fields = AudienceCreate.model_validate({"name": "fault", **body}).stored()
        doc = audiences.new_document(brand, fields, datetime.now(UTC))
        audiences.insert(self.documents, doc)
        return str(doc["_id"])

    def ask(self, audience_id: str) -> None:
        kwargs = {"audience_id": audience_id, "as_of": AS_OF_TEXT}
        self.producer.send_task("audiences.materialize", kwargs=kwargs, queue=self.env["QUEUE"])

    def states(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        found = self.documents.find({"_id": {"$in": [ObjectId(i) for i in ids]}})
        return {str(doc["_id"]): doc for doc in found}

    def recipients(self, audience_id: str) -> set[str]:
        cache = redis.Redis.from_url(self.redis_url, decode_responses=True)
        key = f"{self.env['KEY_PREFIX']}:{{{audience_id}}}:recipients"
        return {str(member) for member in cache.smembers(key)}

    def stop(self) -> None:
        for group in (self.beat, self.worker, self.cache):
            group.stop()
        self.client.close()


def claims(cluster: Cluster, ids: list[str]) -> int:
    """Runs claimed so far over `ids`."""
    return sum(d["materialization"].get("claimSeq", 0) for d in cluster.states(ids).values())


def ask_all_and_wait_for_a_run(cluster: Cluster, ids: list[str]) -> None:
    before = claims(cluster, ids)
    for audience_id in ids:
        cluster.ask(audience_id)
    wait_for("a run to start", lambda: claims(cluster, ids) > before, 60)


def wait_for(what: str, done: Callable[[], bool], timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if done():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s")


def right(cluster: Cluster, expected: dict[str, tuple[int, int, set[str]]]) -> bool:
    docs = cluster.states(list(expected))
    for audience_id, (count_nft, count_owner, members) in expected.items():
        doc = docs.get(audience_id) or {}
        state = doc.get("materialization") or {}
        if state.get("state") != "ready" or state.get("claimSeq") != state.get("resultSeq"):
            return False
        if (doc.get("countNFT"), doc.get("countOwner")) != (count_nft, count_owner):
            return False
        if cluster.recipients(audience_id) != members:
            return False
    return True


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, mongo_url: str, real_db: str
) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("faults"), mongo_url, real_db)
    try:
        cluster.start_worker()
        cluster.start_beat()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def expected_and_ids(cluster: Cluster) -> dict[str, tuple[int, int, set[str]]]:
    expected = {}
    for brand, body in BODIES:
        stored = AudienceCreate.model_validate({"name": "n", **body}).stored()
        count_nft, owners, recipients = evaluate(brand, stored, AS_OF)
        expected[cluster.create(brand, body)] = (count_nft, len(owners), recipients)
    return expected


def test_kill_9_of_the_worker_mid_run_ten_times(
    cluster: Cluster, expected_and_ids: dict[str, Any], figure: Callable[[str], None]
) -> None:
    ids = list(expected_and_ids)
    rng = random.Random(9)
    started = time.monotonic()
    for _ in range(10):
        ask_all_and_wait_for_a_run(cluster, ids)
        time.sleep(rng.uniform(0, 0.3))
        cluster.kill_worker()
        cluster.start_worker()
    recovered = wait_for(
        "every audience ready and right", lambda: right(cluster, expected_and_ids), 180
    )
    runs = claims(cluster, ids)
    figure(
        f"kill -9 mid-run x10: {len(ids)}/{len(ids)} audiences ready with right counts and sets, "
        f"{recovered:.1f} s after the last kill ({time.monotonic() - started:.0f} s in all, "
        f"{runs} runs claimed)"
    )


def test_redis_restarted_mid_run(
    cluster: Cluster, expected_and_ids: dict[str, Any], figure: Callable[[str], None]
) -> None:
    ids = list(expected_and_ids)
    for audience_id in ids:
        cluster.ask(audience_id)
    wait_for("the worker to settle", lambda: right(cluster, expected_and_ids), 180)
    ask_all_and_wait_for_a_run(cluster, ids)
    cluster.restart_redis(down_s=1)
    restarted = time.monotonic()
    probe = ids[0]
    before = cluster.states([probe])[probe]["materialization"]["claimSeq"]
    cluster.ask(probe)
    consumed = wait_for(
        "the worker to consume again",
        lambda: cluster.states([probe])[probe]["materialization"]["claimSeq"] > before,
        30,
    )
    # Redis kept nothing across the restart: readers find cache misses and ask for runs.
    for audience_id in ids:
        cluster.ask(audience_id)
    recovered = wait_for(
        "every audience right again", lambda: right(cluster, expected_and_ids), 120
    )
    figure(
        f"redis restarted mid-run: worker consumed again {consumed:.1f} s after the restart; "
        f"after the cache misses were asked for, every audience ready and right in "
        f"{recovered:.1f} s ({time.monotonic() - restarted:.1f} s after the restart)"
    )


def test_the_store_away_for_a_while(
    tmp_path_factory: pytest.TempPathFactory, figure: Callable[[str], None]
) -> None:
    workdir = tmp_path_factory.mktemp("outage")
    store = Group(workdir / "store-server")
    store.workdir.mkdir()
    url = start_store(store)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    settings = Settings(mongo_url=url, mongo_db="outage")
    client: MongoClient[dict[str, Any]] = MongoClient(url, tz_aware=True)
    collections = stores(client, settings)
    ensure_indexes(collections)
    owner = "0x" + "1" * 40
    collections.passports.insert_many(
        {"brandId": "b", "tokenId": str(i), "tags": ["t"], "owner": owner} for i in range(20)
    )
    cluster = Cluster(workdir, url, "outage", MAX_FAILURES="1")
    try:
        cluster.start_worker()
        cluster.start_beat()
        audience_id = cluster.create("b", {"tags": "t"})
        cluster.ask(audience_id)
        done = {audience_id: (20, 1, {str(i) for i in range(20)})}
        wait_for("the first result", lambda: right(cluster, done), 60)

        # The world changes, then the store goes away before the worker hears of it.
        collections.passports.delete_many({"tokenId": {"$in": ["0", "1", "2"]}})
        client.close()
        cluster.client.close()
        store.stop()
        away = time.monotonic()
        cluster.ask(audience_id)
        readable = set()
        while time.monotonic() - away < STORE_OUTAGE_S:
            readable = cluster.recipients(audience_id)
            assert len(readable) == 20, "the last good result must stay readable"
            time.sleep(1)
        start_store(store, port)
        cluster.client = MongoClient(url, tz_aware=True)
        cluster.documents = cluster.client["outage"][cluster.env["AUDIENCES_COLLECTION"]]
        after = {audience_id: (17, 1, {str(i) for i in range(3, 20)})}
        recovered = wait_for("the change to be materialized", lambda: right(cluster, after), 120)
        log = (cluster.worker.workdir / "worker.log").read_text(errors="replace")
        retries, gave_up = log.count("Retry in"), log.count("materialize.failed")
        asked_again = log.count("materialize.asked_again")
        assert retries >= 1 and gave_up >= 1 and asked_again >= 1, "no retry policy at work"
        figure(
            f"store away {STORE_OUTAGE_S:.0f} s: last good set readable throughout; while away "
            f"retried {retries}x, gave up {gave_up}x, put the request back {asked_again}x; the "
            f"change materialized {recovered:.1f} s after the store answered again"
        )
    finally:
        cluster.stop()
        store.stop()


def test_two_beat_processes_at_once(
    cluster: Cluster, expected_and_ids: dict[str, Any], figure: Callable[[str], None]
) -> None:
    # Twenty audiences whose last run failed and whose retry is due now.
    due = []
    for _ in range(20):
        audience_id = cluster.create(
            "poap-devcon", {"tagRule": "productIds", "productIds": "67378"}
        )
        due.append(audience_id)
    failed = {"state": "failed", "retryAtMs": 0, "enqueuedAtMs": 0}
    cluster.documents.update_many(
        {"_id": {"$in": [ObjectId(i) for i in due]}},
        {"$set": {f"materialization.{key}": value for key, value in failed.items()}},
    )
    cluster.start_beat()  # a second beat beside the cluster's own
    try:
        wait_for(
            "every due audience ready",
            lambda: all(
                d["materialization"]["state"] == "ready" for d in cluster.states(due).values()
            ),
            60,
        )
        time.sleep(3)  # more ticks of both beats, which must find nothing left to do
    finally:
        cluster.beat.stop()
        cluster.start_beat()
    runs = [d["materialization"]["claimSeq"] for d in cluster.states(due).values()]
    figure(
        f"two beat processes: {len(due)} due audiences, {sum(runs)} runs, "
        f"at most {max(runs)} per audience"
    )
    assert runs == [1] * len(due)
