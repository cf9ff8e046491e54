"""Building one run's result in temporary keys, then switching it in atomically.

The temporary keys carry a TTL from their first write, so a run that dies leaves nothing
behind for long. The switch is one Lua script: readers see the old result or the new one,
never a mix, a partial set or a gap, and an older run can never replace a newer one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

from redis import Redis

from worker.cache.keys import AudienceKeys

# KEYS: published recipients, owners, meta, then the build's. ARGV: run seq, TTL in seconds.
# Returns 1 when switched, 0 when a result of a later run is already published.
SWITCH = """
local published = redis.call('HGET', KEYS[3], 'seq')
if published and tonumber(published) >= tonumber(ARGV[1]) then
  redis.call('UNLINK', KEYS[4], KEYS[5], KEYS[6])
  return 0
end
for i = 1, 3 do
  redis.call('UNLINK', KEYS[i])
  if redis.call('EXISTS', KEYS[i + 3]) == 1 then
    redis.call('RENAME', KEYS[i + 3], KEYS[i])
    redis.call('EXPIRE', KEYS[i], ARGV[2])
  end
end
return 1
"""

# KEYS: the build's firsts hash. ARGV: owner, tokenId, owner, tokenId, ..., then the TTL.
# Keeps, per owner, the tokenId that sorts first by length, then text (bytewise).
KEEP_FIRST = """
for i = 1, #ARGV - 1, 2 do
  local kept = redis.call('HGET', KEYS[1], ARGV[i])
  local token = ARGV[i + 1]
  if not kept or #token < #kept or (#token == #kept and token < kept) then
    redis.call('HSET', KEYS[1], ARGV[i], token)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV])
return 0
"""

WRITE_CHUNK = 10_000
T = TypeVar("T")


class ResultBuilder:
    """Collects one run's recipients and owners aside from what readers see."""

    def __init__(self, redis: Redis, prefix: str, audience_id: str, run_id: str, ttl_s: int):
        self._redis = redis
        self._ttl_s = ttl_s
        self.audience_id = audience_id
        self.published = AudienceKeys.published(prefix, audience_id)
        self.build = AudienceKeys.building(prefix, audience_id, run_id)
        self.round_trips = 0

    def add(self, recipients: Iterable[str], owners: Iterable[str]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for key, members in ((self.build.recipients, recipients), (self.build.owners, owners)):
            for chunk in _chunks(members, WRITE_CHUNK):
                pipe.sadd(key, *chunk)
                pipe.expire(key, self._ttl_s)
        if len(pipe):
            pipe.execute()
            self.round_trips += 1

    def keep_first(self, pairs: list[tuple[str, str]]) -> None:
        """uniqueOwner: remember each owner's first tokenId so far, in Redis, not in memory."""
        for chunk in _chunks(pairs, WRITE_CHUNK // 2):
            flat = [item for owner, token in chunk for item in (owner, token)]
            self._redis.eval(KEEP_FIRST, 1, self.build.firsts, *flat, self._ttl_s)
            self.round_trips += 1

    def firsts_to_recipients(self) -> int:
        """Move the kept first tokenIds into the recipient set; returns how many."""
        cursor = 0
        while True:
            cursor, found = self._redis.hscan(self.build.firsts, cursor, count=WRITE_CHUNK)
            tokens = cast(dict[str, str], found).values()  # HSCAN gives a mapping here
            self.add(tokens, ())
            self.round_trips += 1
            if cursor == 0:
                return int(self._redis.hlen(self.build.firsts))

    def owner_count(self) -> int:
        self.round_trips += 1
        return int(self._redis.scard(self.build.owners))

    def publish(self, meta: Mapping[str, Any], seq: int, ttl_s: int) -> bool:
        """Switch the build in; False when a later run's result is already there."""
        fields = {**meta, "seq": seq}
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self.build.meta, mapping={k: str(v) for k, v in fields.items()})
        pipe.expire(self.build.meta, self._ttl_s)
        pipe.eval(SWITCH, 6, *self.published.all(), *self.build.all(), seq, ttl_s)
        switched = pipe.execute()[-1]
        self.round_trips += 1
        return bool(switched)

    def discard(self) -> None:
        self._redis.unlink(*self.build.all(), self.build.firsts)


def drop(redis: Redis, prefix: str, audience_id: str) -> None:
    """Remove an audience's published keys (the audience itself is gone)."""
    redis.unlink(*AudienceKeys.published(prefix, audience_id).all())


def _chunks(members: Iterable[T], size: int) -> Iterable[list[T]]:
    chunk: list[T] = []
    for member in members:
        chunk.append(member)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
