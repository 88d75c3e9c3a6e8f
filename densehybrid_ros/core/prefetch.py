"""Read ahead: run an iterator in a background thread, a bounded number of items ahead.

Reading and decoding a bag (or a benchmark folder) overlaps with the model's forward pass this
way. Errors raised while reading reach the consumer at the item where they happened, and
closing the generator (or leaving its loop) stops the thread before the source is closed.
"""

import queue
import threading
from typing import Any, Generator, Iterator, Optional, Tuple, TypeVar

T = TypeVar('T')
_POLL_S = 0.1              # how often a blocked reader checks whether the consumer left


def prefetch(items: Iterator[T], depth: int, name: str = 'prefetch') -> Generator[T, None, None]:
    """Yield ``items``, read in a background thread up to ``depth`` ahead (0: no thread)."""
    if depth <= 0:
        yield from items
        return
    slots: 'queue.Queue[Tuple[Any, Optional[BaseException]]]' = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: Tuple[Any, Optional[BaseException]]) -> bool:
        while not stop.is_set():
            try:
                slots.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as exc:     # handed to the consumer, raised in its thread
            put((done, exc))
            return
        put((done, None))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item, exc = slots.get()
            if item is done:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=10.0)
