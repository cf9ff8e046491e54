"""The Celery tasks: thin wrappers that validate, delegate to the core, and log."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pymongo.errors
import redis.exceptions
from celery import Task

from worker import messages
from worker.cache.debounce import first_in_window
from worker.celery_app import app
from worker.errors import InvalidMessage
from worker.logs import event
from worker.materialize import changes, refresh
from worker.materialize.partition import Part, run_part
from worker.materialize.run import give_up, materialize
from worker.messages import part_message
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
        try:
            request = messages.materialize_request(*args, **kwargs)
        except InvalidMessage:
            return
        audience_id = str(request.audience_id)
        event(log, "materialize.failed", logging.WARNING, audience_id=audience_id, error=exc)
        try:
            give_up(context(), request.audience_id, exc)
        except TRANSIENT:
            # The store is still out of reach, so `failed` cannot even be written: keep the
            # request alive rather than lose it, and ask again after the base backoff.
            countdown_s = context().settings.retry_base_s
            ask(audience_id, request.revision, countdown_s=countdown_s)
            event(log, "materialize.asked_again", audience_id=audience_id, countdown_s=countdown_s)
        except Exception:
            log.exception("materialize.failure_not_recorded")


def ask(
    audience_id: str, revision: int | None, as_of: str | None = None, countdown_s: float = 0
) -> None:
    """Enqueue `audiences.materialize` on the configured queue."""
    kwargs = {"audience_id": audience_id, "revision": revision, "as_of": as_of}
    queue = context().settings.queue
    app.send_task("audiences.materialize", kwargs=kwargs, countdown=countdown_s, queue=queue)


def send_parts(parts: Sequence[Part]) -> None:
    """Enqueue one `audiences.materialize_part` per part, for any worker to take."""
    queue = context().settings.queue
    for part in parts:
        app.send_task("audiences.materialize_part", kwargs=part_message(part), queue=queue)


def _rejected(task: Task, error: InvalidMessage) -> dict[str, Any]:
    event(log, "message.rejected", logging.WARNING, task=task.name, reason=str(error))
    return {"status": "rejected", "reason": str(error)}


# Celery's own retry with backoff, for the store or the cache out of reach.
RETRIED: dict[str, Any] = {
    "bind": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@app.task(name="audiences.materialize", base=MaterializeTask, **RETRIED)
def materialize_task(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        request = messages.materialize_request(*args, **kwargs)
    except InvalidMessage as error:
        return _rejected(self, error)
    ctx = context()
    outcome = materialize(ctx, request)
    audience_id = str(request.audience_id)
    if outcome.status == "settling":
        # Ask again once the edits have settled; by then a newer revision may own the run.
        ask(audience_id, outcome.revision, countdown_s=ctx.settings.settle_ms / 1000)
    if outcome.status not in ("done", "partitioned"):
        event(log, "materialize.skipped", audience_id=audience_id, status=outcome.status)
    return {"status": outcome.status, "revision": outcome.revision}


class PartTask(Task):
    """A part that cannot finish fails its whole run, as a single task would."""

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        try:
            part = messages.part_request(*args, **kwargs)
        except InvalidMessage:
            return
        audience_id = str(part.audience_id)
        event(log, "part.failed", logging.WARNING, audience_id=audience_id, index=part.index)
        try:
            give_up(context(), part.audience_id, exc)
        except Exception:
            # Left `running`, the audience is asked again once its lease runs out.
            log.exception("part.failure_not_recorded")


@app.task(name="audiences.materialize_part", base=PartTask, **RETRIED)
def materialize_part_task(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        part = messages.part_request(*args, **kwargs)
    except InvalidMessage as error:
        return _rejected(self, error)
    outcome = run_part(context(), part)
    return {"status": outcome.status, "revision": outcome.revision, "index": part.index}


@app.task(name="audiences.refresh_due", bind=True)
def refresh_due_task(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        messages.no_arguments(*args, **kwargs)
    except InvalidMessage as error:
        return _rejected(self, error)
    try:
        due = refresh.due(context())
    except TRANSIENT as error:
        # The next tick will look again; a queue of failing ticks would only crowd out runs.
        event(log, "refresh.skipped", logging.WARNING, error=type(error).__name__)
        return {"enqueued": 0, "skipped": type(error).__name__}
    for audience_id, revision in due:
        ask(audience_id, revision)
    event(log, "refresh.enqueued", count=len(due))
    return {"enqueued": len(due)}


@app.task(name="passports.changed", bind=True, autoretry_for=TRANSIENT, retry_backoff=2)
def passports_changed_task(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        change = messages.passports_changed(*args, **kwargs)
    except InvalidMessage as error:
        return _rejected(self, error)
    affected = changes.after_passports(context(), change.brand_id, change.token_ids)
    return _rerun(affected, "passports.changed")


@app.task(name="wallets.changed", bind=True, autoretry_for=TRANSIENT, retry_backoff=2)
def wallets_changed_task(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
    try:
        change = messages.wallets_changed(*args, **kwargs)
    except InvalidMessage as error:
        return _rejected(self, error)
    return _rerun(changes.after_wallets(context(), change.addresses), "wallets.changed")


def _rerun(affected: list[tuple[str, int]], cause: str) -> dict[str, Any]:
    """Schedule one run per affected audience per debounce window.

    The run starts a whole window after the first event, and the window is never shorter
    than FRESH_S: a result fresh enough to skip it must then have started after the event.
    """
    ctx = context()
    window_s = max(ctx.settings.debounce_s, ctx.settings.fresh_s)
    scheduled = 0
    for audience_id, revision in affected:
        if first_in_window(ctx.redis, ctx.settings.key_prefix, audience_id, window_s * 1000):
            ask(audience_id, revision, countdown_s=window_s)
            scheduled += 1
    event(log, "change.rerun", cause=cause, affected=len(affected), scheduled=scheduled)
    return {"affected": len(affected), "scheduled": scheduled}
