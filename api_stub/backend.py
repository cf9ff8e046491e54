"""What the API talks to: the audience documents, the Redis cache and the task queue."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from celery import Celery
from pymongo.collection import Collection
from redis import Redis

from worker.logs import event
from worker.settings import Settings
from worker.store.mongo import connect, ensure_indexes, stores

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def materialize(self, audience_id: str, revision: int, as_of: str | None = None) -> bool: ...


class CeleryPublisher:
    """Sends `audiences.materialize` to the configured queue."""

    def __init__(self, app: Celery, queue: str) -> None:
        self._app = app
        self._queue = queue

    def materialize(self, audience_id: str, revision: int, as_of: str | None = None) -> bool:
        kwargs = {"audience_id": audience_id, "revision": revision, "as_of": as_of}
        try:
            self._app.send_task(
                "audiences.materialize",
                kwargs=kwargs,
                queue=self._queue,
                # A stalled broker must not hold the request for long: the document is
                # already stored as pending, and refresh_due enqueues it later.
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 1},
            )
        except Exception as error:
            # The document is stored as `pending`; the refresh schedule enqueues it later.
            event(log, "publish.failed", logging.WARNING, audience_id=audience_id, error=error)
            return False
        event(log, "publish.sent", audience_id=audience_id, revision=revision)
        return True


@dataclass(frozen=True)
class Backend:
    settings: Settings
    audiences: Collection[dict]
    redis: Redis
    publisher: Publisher


def connect_backend(settings: Settings) -> Backend:
    from worker.celery_app import app as celery_app

    collections = stores(connect(settings), settings)
    ensure_indexes(collections)
    redis = Redis.from_url(settings.require_redis_url(), decode_responses=True)
    publisher = CeleryPublisher(celery_app, settings.queue)
    return Backend(settings, collections.audiences, redis, publisher)
