"""Real Celery worker processes for the benchmark, and a client that asks them to run."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

from bson import ObjectId
from celery import Celery
from redis import Redis

from worker.cache.keys import AudienceKeys
from worker.embedded.processes import Group
from worker.instants import iso


@dataclass
class Workers:
    """Worker processes of one pool each (`solo`), so each pid is the one that runs tasks.

    They take tasks from their own queue only, under names of their own (`name`-1, ...), so
    several sets can run side by side, each on its own database.
    """

    group: Group
    env: dict[str, str]
    name: str = "w"
    pids: list[int] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return f"bench-{self.name}"

    def add(self) -> int:
        name = self._child(len(self.pids) + 1)
        argv = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "-Q", self.queue, "-P", "solo", "-n", f"{name}@bench", "-l", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        # Cold shutdown: a stopped bench has no use for the run in hand.
        self.group.start(name, argv, {**self.env, "QUEUE": self.queue}, signal.SIGQUIT)
        log = self.group.workdir / f"{name}.log"
        self.group.wait_until(f"worker {name}", lambda: b" ready." in _read(log), 120)
        pid = self.group.children[-1][1].pid
        self.pids.append(pid)
        return pid

    def restart(self) -> None:
        """Start as many new worker processes in place of the running ones."""
        count = len(self.pids)
        for n in range(count):
            self.group.stop_child(self._child(n + 1))
        self.pids.clear()
        for _ in range(count):
            self.add()

    def _child(self, number: int) -> str:
        return f"{self.name}-{number}"


def _read(path: object) -> bytes:
    try:
        with open(str(path), "rb") as log:
            return log.read()
    except FileNotFoundError:
        return b""


class Asker:
    """Enqueues a run the way any producer does, and waits for its figures in Redis."""

    def __init__(self, broker_url: str, redis: Redis, prefix: str, group: Group):
        self._celery = Celery(broker=broker_url)
        self._redis = redis
        self._prefix = prefix
        self._group = group

    def run(
        self, audience_id: ObjectId, as_of: datetime, queue: str, timeout_s: float = 3600
    ) -> dict:
        key = AudienceKeys.last_run(self._prefix, str(audience_id))
        self._redis.unlink(key)
        kwargs = {"audience_id": str(audience_id), "revision": None, "as_of": iso(as_of)}
        self._celery.send_task("audiences.materialize", kwargs=kwargs, queue=queue)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            figures = self._redis.hgetall(key)
            if figures:
                return figures
            self._group.check()  # a worker or server that died ends the wait at once
            time.sleep(0.01)
        raise TimeoutError(f"no run of {audience_id} finished within {timeout_s:.0f} s")

    def close(self) -> None:
        self._celery.close()
