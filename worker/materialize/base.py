"""What every run works with: its context, its request, what it claimed and its outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bson import ObjectId
from redis import Redis

from worker.audience.rule import Rule
from worker.settings import Settings
from worker.store.mongo import Stores

if TYPE_CHECKING:
    from worker.materialize.partition import Part


@dataclass(frozen=True)
class Context:
    """What a run needs from outside: settings and live connections."""

    settings: Settings
    stores: Stores
    redis: Redis
    # Told the number of passports read so far, after each batch (the CLI's progress bar).
    on_progress: Callable[[int], None] | None = None
    # Hands the parts of a partitioned run to other workers; without it runs are never split.
    send_parts: Callable[[Sequence[Part]], None] | None = None


@dataclass(frozen=True)
class Request:
    """A validated `audiences.materialize` message."""

    audience_id: ObjectId
    revision: int | None = None
    as_of: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    """What became of a request: `done`, or why nothing was done."""

    status: str
    revision: int | None = None
    count_nft: int | None = None
    count_owner: int | None = None
    recipients: int | None = None
    duration_ms: int | None = None
    passports_read: int = 0
    store_round_trips: int = 0
    redis_round_trips: int = 0


@dataclass
class Claimed:
    """A run that holds the audience: its id, order and the rule it evaluates."""

    run_id: str
    seq: int
    revision: int
    rule: Rule
