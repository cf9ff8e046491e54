"""Audience documents as the API shows them."""

from __future__ import annotations

from typing import Any

from worker.audience.fields import DEFAULTS
from worker.instants import iso, stored

PUBLIC_STATE = ("state", "revision", "evaluatedAt", "durationMs", "error")


def render(doc: dict[str, Any]) -> dict[str, Any]:
    """The stored document with defaults filled in, instants in the contract's form, and only
    the public part of `materialization` (leases and run order stay internal)."""
    out: dict[str, Any] = {"_id": str(doc["_id"]), "brandId": doc["brandId"], "name": doc["name"]}
    if "description" in doc:
        out["description"] = doc["description"]
    for field, default in DEFAULTS.items():
        value = doc.get(field, default)
        out[field] = list(value) if isinstance(value, list) else value
    # Some MongoDB-speaking servers hand back a boolean written by `$set` as 0 or 1.
    out["uniqueOwner"] = bool(out["uniqueOwner"])
    state = doc.get("materialization") or {}
    out |= {
        "createdAt": _instant(doc.get("createdAt")),
        "updatedAt": _instant(doc.get("updatedAt")),
        "__v": 0,
        "revision": doc["revision"],
        "countNFT": doc.get("countNFT"),
        "countOwner": doc.get("countOwner"),
        "materialization": {key: state.get(key) for key in PUBLIC_STATE},
    }
    out["materialization"]["evaluatedAt"] = _instant(state.get("evaluatedAt"))
    return out


def _instant(value: Any) -> str | None:
    moment = stored(value)
    return iso(moment) if moment else None
