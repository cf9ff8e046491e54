"""Read-ahead keeps the order, raises where the failed batch would come, and stops early."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from worker.materialize.prefetch import prefetched


def test_items_come_in_order_and_all_of_them() -> None:
    assert list(prefetched(iter(range(1000)))) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("store away")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="store away"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1, 2]


def test_the_reader_stays_at_most_depth_ahead_and_stops_with_the_consumer() -> None:
    produced: list[int] = []

    def counting() -> Iterator[int]:
        for n in range(100):
            produced.append(n)
            yield n

    stream = prefetched(counting(), depth=2)
    assert next(stream) == 0
    time.sleep(0.3)  # ample time for the reader to run ahead as far as it may
    # Item 0 was taken, 1 and 2 wait in the queue, 3 is read and held until there is room.
    assert len(produced) == 4
    stream.close()
    assert not [t for t in threading.enumerate() if t.daemon and t.is_alive() and "_read" in t.name]
    assert len(produced) == 4
