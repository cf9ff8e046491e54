"""Reading a published result page by page, the way the campaign stack does.

The meta hash marks a published result and says how many recipients it has: an audience whose
result is empty has a meta hash and no recipient set (Redis keeps no empty sets). No meta
hash, or no set where the meta hash counts recipients (an eviction), is a cache miss.

Pages hold at most `count` recipients. They are cut from SSCAN batches of a fixed size: a
published set never changes (a new result replaces the whole key), so the same SSCAN position
gives the same batch again, and a cursor can point inside one. A cursor also names the run it
belongs to, so paging across a switch is detected instead of silently mixing two runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redis import Redis

from worker.cache.keys import AudienceKeys

SCAN_BATCH = 1000
MAX_SCAN_CURSOR = 2**64 - 1
CURSOR = re.compile(r"(?P<seq>[0-9]{1,19})-(?P<position>[0-9]{1,20})(?:-(?P<skip>[0-9]{1,5}))?")


class CursorInvalid(ValueError):
    """The cursor is not one this reader handed out."""


class ResultChanged(Exception):
    """A newer run was switched in since the cursor was handed out."""


@dataclass(frozen=True)
class Page:
    recipients: list[str]
    cursor: str
    revision: int


@dataclass
class _Position:
    seq: str | None
    scan: int
    skip: int


def read_page(redis: Redis, prefix: str, audience_id: str, cursor: str, count: int) -> Page | None:
    """One page of at most `count` recipients, or None on a cache miss."""
    at = _parse(cursor)
    keys = AudienceKeys.published(prefix, audience_id)
    page: list[str] = []
    while True:
        pipe = redis.pipeline(transaction=True)
        pipe.hmget(keys.meta, ["revision", "seq", "recipients"])
        pipe.exists(keys.recipients)
        pipe.sscan(keys.recipients, at.scan, count=SCAN_BATCH)
        (revision, seq, expected), present, (next_scan, members) = pipe.execute()
        # No meta, or a set that the meta says is not empty but is gone (evicted): a miss.
        if revision is None or (not present and expected not in (None, "0")):
            return None
        if at.seq is not None and at.seq != seq:
            raise ResultChanged(audience_id)
        at.seq = seq
        batch = sorted(members)
        taken = batch[at.skip : at.skip + count - len(page)]
        page += taken
        at.skip += len(taken)
        if at.skip < len(batch):
            return Page(page, f"{seq}-{at.scan}-{at.skip}", int(revision))
        if int(next_scan) == 0:
            return Page(page, "0", int(revision))
        at.scan, at.skip = int(next_scan), 0
        if len(page) == count:
            return Page(page, f"{seq}-{at.scan}-0", int(revision))


def _parse(cursor: str) -> _Position:
    if cursor in ("", "0"):
        return _Position(None, 0, 0)
    match = CURSOR.fullmatch(cursor)
    if match is None or int(match["position"]) > MAX_SCAN_CURSOR:
        raise CursorInvalid(cursor)
    return _Position(match["seq"], int(match["position"]), int(match["skip"] or 0))
