"""Reading the next batch from the store while the worker handles the current one.

A run alternates between waiting on the store and working (writing to Redis). With the next
batches asked for in a thread, the store is kept busy through the worker's share instead of
idling, and the run takes about the longer of the two rather than their sum. At most `depth`
batches wait, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


def prefetched(batches: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield what `batches` yields, reading ahead by up to `depth` items in a thread.

    An error in the reader is raised here, at the point the failed item would have come;
    a consumer that stops early stops the reader too.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    reader = threading.Thread(target=_read, args=(batches, ready, stop), daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def _read(batches: Iterator[object], ready: queue.Queue[object], stop: threading.Event) -> None:
    try:
        for batch in batches:
            if not _put(ready, batch, stop):
                return
        _put(ready, _DONE, stop)
    except BaseException as error:
        _put(ready, _Failure(error), stop)


def _put(ready: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Hand `item` over unless the consumer has gone; False when it has."""
    while not stop.is_set():
        try:
            ready.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False
