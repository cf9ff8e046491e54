"""One run per audience per window, however many change events arrive in it."""

from __future__ import annotations

from redis import Redis


def first_in_window(redis: Redis, prefix: str, audience_id: str, window_ms: int) -> bool:
    """True for the first call per audience in `window_ms`; the key expires with the window."""
    key = f"{prefix}:{{{audience_id}}}:debounce"
    return bool(redis.set(key, "1", nx=True, px=max(1, window_ms)))
