"""The Celery application, configured for long tasks on a Redis broker.

Configuration is read from the settings when Celery first needs it, not at import, so
importing this module (as `celery -A worker.celery_app` does) reads no environment.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from worker import logs
from worker.settings import get_settings

app = Celery("audience_worker", include=["worker.tasks"])


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    settings = get_settings()
    sender.conf.update(
        broker_url=settings.broker(),
        broker_connection_retry_on_startup=True,
        # Only JSON crosses the wire: producers in any language, nothing executable.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # A task is acknowledged when done, and a lost worker puts it back: runs survive
        # crashes, which the revision guard makes safe to repeat.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        # Redis redelivers an unacknowledged task after this; it must outlast the longest run.
        broker_transport_options={
            "visibility_timeout": settings.task_time_limit_s + 600,
            # A broker that stops answering fails a publish in seconds, not never.
            "socket_timeout": 5,
            "socket_connect_timeout": 5,
        },
        task_default_queue=settings.queue,
        task_routes={
            name: {"queue": settings.queue} for name in ("audiences.*", "passports.*", "wallets.*")
        },
        task_annotations={
            name: {"max_retries": settings.max_failures}
            for name in ("audiences.materialize", "audiences.materialize_part")
        },
        beat_schedule={
            "refresh-due": {
                "task": "audiences.refresh_due",
                "schedule": settings.refresh_every_s,
                # A tick that waited past the next one is moot: never let ticks pile up.
                "options": {"expires": settings.refresh_every_s},
            }
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )


@signals.setup_logging.connect
def _logging(**_: Any) -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_json)
