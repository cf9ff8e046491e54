"""Reading a published result page by page, the way the campaign stack does.

The meta hash marks a published result: an audience whose result is empty has a meta hash and
no recipient set (Redis keeps no empty sets). No meta hash means a cache miss.
A page cursor names the run it belongs to, so paging across a switch is detected instead of
silently mixing two runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redis import Redis

from worker.cache.keys import AudienceKeys

MAX_SCAN_CURSOR = 2**64 - 1
CURSOR = re.compile(r"(?P<seq>[0-9]{1,19})-(?P<position>[0-9]{1,20})")


class CursorInvalid(ValueError):
    """The cursor is not one this reader handed out."""


class ResultChanged(Exception):
    """A newer run was switched in since the cursor was handed out."""


@dataclass(frozen=True)
class Page:
    recipients: list[str]
    cursor: str
    revision: int


def read_page(redis: Redis, prefix: str, audience_id: str, cursor: str, count: int) -> Page | None:
    """One page of recipients, or None on a cache miss."""
    seq, position = _parse(cursor)
    keys = AudienceKeys.published(prefix, audience_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hmget(keys.meta, ["revision", "seq"])
    pipe.sscan(keys.recipients, position, count=count)
    (revision, current_seq), (next_position, members) = pipe.execute()
    if revision is None:
        return None
    if seq is not None and seq != current_seq:
        raise ResultChanged(audience_id)
    done = int(next_position) == 0
    next_cursor = "0" if done else f"{current_seq}-{int(next_position)}"
    return Page(sorted(_text(m) for m in members), next_cursor, int(revision))


def _parse(cursor: str) -> tuple[str | None, int]:
    if cursor in ("", "0"):
        return None, 0
    match = CURSOR.fullmatch(cursor)
    if match is None or int(match["position"]) > MAX_SCAN_CURSOR:
        raise CursorInvalid(cursor)
    return match["seq"], int(match["position"])


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else member
