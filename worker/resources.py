"""Connections of one worker process, opened on first use after the fork."""

from __future__ import annotations

import os

from redis import Redis

from worker.materialize.run import Context
from worker.settings import get_settings
from worker.store.mongo import connect, ensure_indexes, stores

_opened: dict[int, Context] = {}


def context() -> Context:
    """This process's context; a forked child opens its own, as pymongo requires."""
    pid = os.getpid()
    if pid not in _opened:
        _opened.clear()
        settings = get_settings()
        collections = stores(connect(settings), settings)
        ensure_indexes(collections)
        redis = Redis.from_url(settings.require_redis_url(), decode_responses=True)
        # Imported here: the tasks module imports this one.
        from worker.tasks import send_parts

        _opened[pid] = Context(settings, collections, redis, send_parts=send_parts)
    return _opened[pid]
