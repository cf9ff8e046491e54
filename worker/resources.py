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
        _opened[pid] = Context(settings, collections, redis)
    return _opened[pid]
