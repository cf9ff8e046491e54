"""Prometheus metrics: what the worker did, and the state of every audience.

Worker processes count their runs into one Redis hash (`<prefix>:metrics`, kept on purpose
without a TTL: it holds running totals), so any number of them add up. The collector reads
that hash and the store when scraped, and serves the gauges and counters below.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from redis import Redis

if TYPE_CHECKING:
    from worker.materialize.run import Context

STATES = ("pending", "running", "ready", "failed")
BUCKETS_S = (0.1, 0.5, 1, 5, 15, 60, 300, 900)


def metrics_key(prefix: str) -> str:
    return f"{prefix}:metrics"


def record_run(redis: Redis, prefix: str, status: str, duration_ms: int) -> None:
    """Count one finished run and its duration."""
    seconds = duration_ms / 1000
    pipe = redis.pipeline(transaction=False)
    key = metrics_key(prefix)
    pipe.hincrby(key, f"runs:{status}", 1)
    pipe.hincrbyfloat(key, "duration_sum", seconds)
    for bound in BUCKETS_S:
        if seconds <= bound:
            pipe.hincrby(key, f"le:{bound}", 1)
    pipe.execute()


def record_failure(redis: Redis, prefix: str) -> None:
    redis.hincrby(metrics_key(prefix), "failures", 1)


class AudienceCollector(Collector):
    """Reads the store, the queue and the run totals at scrape time."""

    def __init__(self, ctx: Context, broker: Redis) -> None:
        self._ctx = ctx
        self._broker = broker

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        yield self._states()
        yield self._oldest()
        backlog = GaugeMetricFamily(
            "audience_worker_queue_backlog", "Messages waiting on the task queue."
        )
        backlog.add_metric([], float(self._broker.llen(self._ctx.settings.queue)))
        yield backlog
        yield from self._runs()

    def _states(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "audience_worker_audiences", "Audiences by materialization state.", labels=["state"]
        )
        audiences = self._ctx.stores.audiences
        for state in STATES:
            count = audiences.count_documents({"materialization.state": state})
            family.add_metric([state], float(count))
        return family

    def _oldest(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "audience_worker_oldest_result_age_seconds",
            "Age of the oldest published result among ready audiences.",
        )
        oldest = self._ctx.stores.audiences.find_one(
            {"materialization.state": "ready", "materialization.finishedAtMs": {"$gt": 0}},
            {"materialization": 1},
            sort=[("materialization.finishedAtMs", 1)],
        )
        finished = ((oldest or {}).get("materialization") or {}).get("finishedAtMs")
        family.add_metric([], max(0.0, time.time() - finished / 1000) if finished else 0.0)
        return family

    def _runs(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        key = metrics_key(self._ctx.settings.key_prefix)
        totals = cast(dict[str, str], self._ctx.redis.hgetall(key))
        runs = CounterMetricFamily(
            "audience_worker_runs", "Materialization runs by outcome.", labels=["status"]
        )
        for field, value in totals.items():
            if field.startswith("runs:"):
                runs.add_metric([field.removeprefix("runs:")], float(value))
        yield runs
        failures = CounterMetricFamily(
            "audience_worker_run_failures", "Failed attempts of materialization runs."
        )
        failures.add_metric([], float(totals.get("failures", 0)))
        yield failures
        count = sum(float(v) for f, v in totals.items() if f.startswith("runs:"))
        buckets = [(str(b), float(totals.get(f"le:{b}", 0))) for b in BUCKETS_S]
        histogram = HistogramMetricFamily(
            "audience_worker_run_duration_seconds", "How long finished runs took."
        )
        histogram.add_metric([], [*buckets, ("+Inf", count)], float(totals.get("duration_sum", 0)))
        yield histogram
