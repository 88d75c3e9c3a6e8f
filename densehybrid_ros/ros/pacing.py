"""When to process a frame that waited and when to wait for the camera's next one.

Pure Python (no ROS imports), used by the node's inference thread. When frames arrive faster
than the node processes them, the frame waiting when the node becomes free is up to one camera
period old. Processing it publishes information ``age + T`` old (T = processing time); waiting
``period - age`` for the next frame publishes information only ``T`` old, a little later. The
average age of the published information is lowest when the waiting frame is taken while
``age <= period / 3`` and skipped otherwise (the age saved, ``age``, against half the extra
wait, ``(period - age) / 2``). So p95 latency under overload stays near ``T + period / 3``
instead of ``T + period``, at the price of an output rate a little below the maximum.
"""

from collections import deque
import statistics
from typing import Deque, Optional

STALE_FRACTION = 1.0 / 3.0
JITTER_SLACK = 0.25        # how late (in periods) the next frame may be before we stop waiting
PERIOD_WINDOW = 9          # inter-arrival times the period estimate is the median of


class FramePeriod:
    """A camera's frame period: the median of its last few inter-arrival times."""

    def __init__(self, window: int = PERIOD_WINDOW) -> None:
        self._intervals: Deque[float] = deque(maxlen=window)
        self._last: Optional[float] = None

    def arrived(self, t: float) -> None:
        """Record a frame arrival at monotonic time ``t`` (seconds)."""
        if self._last is not None and t > self._last:
            self._intervals.append(t - self._last)
        self._last = t

    @property
    def period(self) -> Optional[float]:
        """Median inter-arrival time, or None before three frames arrived."""
        if len(self._intervals) < 2:
            return None
        return statistics.median(self._intervals)


def fresh_wait(age: float, period: Optional[float],
               fraction: float = STALE_FRACTION) -> float:
    """Longest wait for the next frame rather than processing one that waited ``age`` s.

    The next frame is due in ``period - age``; a quarter period more allows for jitter (the
    caller stops waiting as soon as it arrives). 0 means process the waiting frame now: it is
    fresh enough (``age <= fraction * period``), the period is unknown, or the next frame is
    already overdue (the camera slowed down or lost a frame).
    """
    if period is None or not period > 0 or age <= fraction * period:
        return 0.0
    return max(0.0, (1.0 + JITTER_SLACK) * period - age)
