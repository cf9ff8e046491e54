"""Audience documents: the API's reads and writes, and the worker's run bookkeeping.

The document is the truth about progress. Besides the public `materialization` fields
(`state`, `revision`, `evaluatedAt`, `durationMs`, `error`) a run keeps its lease and order
there: `claimSeq` counts claimed runs, `resultSeq` names the run whose result is published.
A result is written only over an older one, so a slow run never overwrites a newer result.
Run bookkeeping instants (`leaseUntilMs`, `finishedAtMs`) are epoch milliseconds: they are
compared in queries, and integers compare the same way on every MongoDB-speaking server.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.collection import Collection

from worker.audience.fields import MEMBERSHIP_FIELDS, rule_problems
from worker.errors import AudienceNotFound, FieldProblem, InvalidInput, UpdateConflict

Doc = dict[str, Any]
PATCH_ATTEMPTS = 10


def new_document(brand_id: str, fields: dict[str, Any], now: datetime) -> Doc:
    return {
        "_id": ObjectId(),
        "brandId": brand_id,
        **fields,
        "createdAt": now,
        "updatedAt": now,
        "__v": 0,
        "revision": 1,
        "countNFT": None,
        "countOwner": None,
        "materialization": {
            "state": "pending",
            "revision": None,
            "evaluatedAt": None,
            "durationMs": None,
            "error": None,
            # The API enqueues the first run itself; refresh_due only catches a lost one.
            "enqueuedAtMs": int(now.timestamp() * 1000),
        },
    }


def insert(audiences: Collection[Doc], doc: Doc) -> Doc:
    _check_rule(doc)
    audiences.insert_one(doc)
    return doc


def get(audiences: Collection[Doc], brand_id: str, audience_id: ObjectId) -> Doc:
    doc = audiences.find_one({"_id": audience_id, "brandId": brand_id})
    if doc is None:
        raise AudienceNotFound(str(audience_id))
    return doc


def list_for_brand(audiences: Collection[Doc], brand_id: str) -> list[Doc]:
    return list(audiences.find({"brandId": brand_id}).sort("createdAt", 1))


def delete(audiences: Collection[Doc], brand_id: str, audience_id: ObjectId) -> None:
    if audiences.delete_one({"_id": audience_id, "brandId": brand_id}).deleted_count == 0:
        raise AudienceNotFound(str(audience_id))


def patch(
    audiences: Collection[Doc],
    brand_id: str,
    audience_id: ObjectId,
    sent: dict[str, Any],
    now: datetime,
) -> tuple[Doc, bool]:
    """Apply the sent fields; returns the new document and whether the revision moved.

    A change of membership is conditioned on the revision it was computed from, so two
    concurrent updates can never both think they made the same change, and none is lost.
    """
    for _ in range(PATCH_ATTEMPTS):
        current = get(audiences, brand_id, audience_id)
        merged = {**current, **sent}
        _check_rule(merged)
        moves = any(merged[f] != current.get(f) for f in MEMBERSHIP_FIELDS if f in sent)
        query: Doc = {"_id": audience_id, "brandId": brand_id}
        update: Doc = {"$set": {**sent, "updatedAt": now}}
        if moves:
            query["revision"] = current["revision"]
            update["$inc"] = {"revision": 1}
            update["$set"]["materialization.state"] = "pending"
            update["$set"]["materialization.enqueuedAtMs"] = int(now.timestamp() * 1000)
        doc = audiences.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        if doc is not None:
            return doc, moves
    raise UpdateConflict(str(audience_id))


def _check_rule(fields: Doc) -> None:
    problems = rule_problems(fields)
    if problems:
        raise InvalidInput([FieldProblem(p, m, fields.get(p)) for p, m in problems])


# The worker's side.


def load(audiences: Collection[Doc], audience_id: ObjectId) -> Doc | None:
    return audiences.find_one({"_id": audience_id})


def claim(
    audiences: Collection[Doc],
    audience_id: ObjectId,
    revision: int,
    run_id: str,
    lease_until_ms: int,
) -> Doc | None:
    """Mark a run of `revision` as started; None when the revision has moved on."""
    return audiences.find_one_and_update(
        {"_id": audience_id, "revision": revision},
        {
            "$set": {
                "materialization.state": "running",
                "materialization.runId": run_id,
                "materialization.runRevision": revision,
                "materialization.leaseUntilMs": lease_until_ms,
            },
            "$inc": {"materialization.claimSeq": 1},
        },
        return_document=ReturnDocument.AFTER,
    )


def extend_lease(
    audiences: Collection[Doc], audience_id: ObjectId, run_id: str, lease_until_ms: int
) -> bool:
    """Keep a long run's hold on the audience; False when another run has taken it."""
    held = {"_id": audience_id, "materialization.runId": run_id}
    update = {"$set": {"materialization.leaseUntilMs": lease_until_ms}}
    return audiences.update_one(held, update).matched_count == 1


def _unless_newer_result(seq: int, *conditions: Doc) -> Doc:
    """`conditions`, and no result of run `seq` or later published yet.

    Spelled as one `$and` because some MongoDB-speaking servers drop the other top-level
    fields of an update's filter when it holds a top-level `$or`.
    """
    no_newer = {
        "$or": [
            {"materialization.resultSeq": {"$lt": seq}},
            {"materialization.resultSeq": {"$exists": False}},
        ]
    }
    return {"$and": [*conditions, no_newer]}


def record_result(audiences: Collection[Doc], audience_id: ObjectId, seq: int, result: Doc) -> bool:
    """Write a run's counts unless a newer run's result is there already.

    Only the latest claimed run of the current revision may say `ready`; an older run that
    still wins leaves the state alone (`pending` or the newer run's `running`).
    """
    fields = {
        "countNFT": result["countNFT"],
        "countOwner": result["countOwner"],
        "materialization.revision": result["revision"],
        "materialization.evaluatedAt": result["evaluatedAt"],
        "materialization.durationMs": result["durationMs"],
        "materialization.finishedAtMs": result["finishedAtMs"],
        "materialization.error": None,
        "materialization.failures": 0,
        "materialization.resultSeq": seq,
    }
    latest = _unless_newer_result(
        seq,
        {"_id": audience_id},
        {"revision": result["revision"], "materialization.claimSeq": seq},
    )
    ready = {**fields, "materialization.state": "ready", "materialization.leaseUntilMs": None}
    if audiences.update_one(latest, {"$set": ready}).matched_count:
        return True
    query = _unless_newer_result(seq, {"_id": audience_id})
    return audiences.update_one(query, {"$set": fields}).matched_count > 0


def record_failure(
    audiences: Collection[Doc],
    audience_id: ObjectId,
    seq: int,
    error: str,
    retry_at_ms: int | None = None,
) -> None:
    """Note a failed attempt of the latest run; the last good result stays as it was.

    With `retry_at_ms` the run has given up: the state is `failed` until refresh_due tries
    again at that instant.
    """
    fields: Doc = {"materialization.error": error[:500]}
    if retry_at_ms is not None:
        fields["materialization.state"] = "failed"
        fields["materialization.leaseUntilMs"] = None
        fields["materialization.retryAtMs"] = retry_at_ms
    audiences.update_one(
        {"_id": audience_id, "materialization.claimSeq": seq},
        {"$set": fields, "$inc": {"materialization.failures": 1}},
    )
