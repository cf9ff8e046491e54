"""The Celery tasks: thin wrappers that validate, delegate to the core, and log."""

from __future__ import annotations

import logging
from typing import Any

import pymongo.errors
import redis.exceptions
from bson import ObjectId
from celery import Task

from worker import messages
from worker.celery_app import app
from worker.errors import InvalidMessage
from worker.logs import event
from worker.materialize import refresh
from worker.materialize.run import give_up, materialize
from worker.resources import context

log = logging.getLogger(__name__)

# Transient: the store or the cache could not be reached. Everything else is a bug or bad
# data, which a retry would only repeat.
TRANSIENT = (
    pymongo.errors.AutoReconnect,
    pymongo.errors.NetworkTimeout,
    pymongo.errors.ServerSelectionTimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


class MaterializeTask(Task):
    """Marks the audience `failed` once the retries are spent."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        audience_id = kwargs.get("audience_id", args[0] if args else None)
        event(log, "materialize.failed", logging.WARNING, audience_id=audience_id, error=exc)
        if not (isinstance(audience_id, str) and ObjectId.is_valid(audience_id)):
            return
        try:
            give_up(context(), ObjectId(audience_id), exc)
        except TRANSIENT:
            # The store is still out of reach, so `failed` cannot even be written: keep the
            # request alive rather than lose it, and ask again after the base backoff.
            _ask_again(audience_id, kwargs.get("revision"), context().settings.retry_base_s)
        except Exception:
            log.exception("materialize.failure_not_recorded")


def _ask_again(audience_id: str, revision: Any, countdown_s: float) -> None:
    settings = context().settings
    kwargs = {"audience_id": audience_id, "revision": revision}
    app.send_task(
        "audiences.materialize", kwargs=kwargs, countdown=countdown_s, queue=settings.queue
    )
    event(log, "materialize.asked_again", audience_id=audience_id, countdown_s=countdown_s)


@app.task(
    name="audiences.materialize",
    base=MaterializeTask,
    bind=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def materialize_task(
    self: Task, audience_id: Any, revision: Any = None, as_of: Any = None
) -> dict[str, Any]:
    try:
        request = messages.materialize_request(audience_id, revision, as_of)
    except InvalidMessage as error:
        event(log, "message.rejected", logging.WARNING, task=self.name, reason=str(error))
        return {"status": "rejected", "reason": str(error)}
    ctx = context()
    outcome = materialize(ctx, request)
    if outcome.status == "settling":
        # Ask again once the edits have settled; by then a newer revision may own the run.
        _ask_again(audience_id, outcome.revision, ctx.settings.settle_ms / 1000)
    if outcome.status != "done":
        event(log, "materialize.skipped", audience_id=audience_id, status=outcome.status)
    return {"status": outcome.status, "revision": outcome.revision}


@app.task(name="audiences.refresh_due")
def refresh_due_task() -> dict[str, int]:
    ctx = context()
    due = refresh.due(ctx)
    for audience_id, revision in due:
        app.send_task(
            "audiences.materialize", kwargs={"audience_id": audience_id, "revision": revision}
        )
    event(log, "refresh.enqueued", count=len(due))
    return {"enqueued": len(due)}
