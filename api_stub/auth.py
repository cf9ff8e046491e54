"""API keys: each key belongs to one brand; comparison takes the same time for any key."""

from __future__ import annotations

import hmac


def brand_for(authorization: str | None, brand_by_key: dict[str, str]) -> str | None:
    """The brand of a `Bearer <key>` header, or None for no key or an unknown one."""
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    candidate = presented.strip().encode()
    brand = None
    # Every key is compared, so timing tells nothing about which keys exist.
    for key, owner in brand_by_key.items():
        if hmac.compare_digest(candidate, key.encode()):
            brand = owner
    return brand
