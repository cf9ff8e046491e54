"""Celery is set for long tasks on Redis, as the reliability guarantees need."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from worker.celery_app import _configure
from worker.settings import get_settings


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:6379/8")
    get_settings.cache_clear()
    app = Celery("probe")
    _configure(sender=app)
    yield app.conf
    get_settings.cache_clear()


def test_long_tasks_are_acknowledged_late_and_one_at_a_time(conf: Any) -> None:
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_time_limits_and_redelivery_are_ordered(conf: Any) -> None:
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_only_json_and_no_stored_results(conf: Any) -> None:
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_ignore_result is True


def test_the_broker_can_be_a_separate_redis(conf: Any) -> None:
    assert conf.broker_url == "redis://127.0.0.1:6379/8"


def test_every_task_goes_to_the_configured_queue(conf: Any) -> None:
    routes = conf.task_routes
    assert routes["audiences.*"] == {"queue": "audiences"}
    assert conf.task_default_queue == "audiences"
    assert conf.beat_schedule["refresh-due"]["task"] == "audiences.refresh_due"
