"""The one timing harness of the speed tools: stopwatch, warm-up and repetitions, rounds, medians.

Every speed figure of ``densehybrid-bench`` and its subcommands is timed here, the same way:

* the clock is the wall clock (``time.perf_counter``); on a GPU it is read only after the
  device's queued work is done (a ``sync`` callable), else it would time the kernel launches;
* warm-up runs (allocations, one-off kernel selection, a first export or compile) are run but
  not counted, then ``reps`` runs are timed and the figure is their median;
* two or more things compared with each other are timed in interleaved rounds whose order
  rotates (A B, B A, A B ...), so that a load drifting during the run (other jobs on a shared
  machine) hits every side alike, and a ratio is taken per round (paired) before its median.
"""

import time
from typing import Any, Callable, List, Sequence, Tuple, TypeVar

import numpy as np

T = TypeVar('T')
Sync = Callable[[], None]


def no_sync() -> None:
    """Wait for nothing: work on the CPU is done when the call returns."""


def device_sync(device: Any) -> Sync:
    """Return the sync of a torch device: wait for its queued CUDA work; nothing on a CPU."""
    if getattr(device, 'type', 'cpu') != 'cuda':
        return no_sync
    import torch

    return lambda: torch.cuda.synchronize(device)


class Stopwatch:
    """Wall and process-CPU seconds since ``start()``; the wall clock is read after ``sync``."""

    def __init__(self, sync: Sync = no_sync) -> None:
        self.sync = sync
        self.wall0 = self.cpu0 = 0.0

    def start(self) -> 'Stopwatch':
        """Wait for the device, then start both clocks; returns itself."""
        self.sync()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def lap(self) -> float:
        """Wall seconds since start, once the device's queued work is done."""
        self.sync()
        return time.perf_counter() - self.wall0

    def cpu(self) -> float:
        """CPU seconds of this whole process (all its threads) since start."""
        return time.process_time() - self.cpu0


def timed(fn: Callable[[], T], sync: Sync = no_sync) -> Tuple[float, T]:
    """Seconds of one call of ``fn`` (device work included) and what it returned."""
    watch = Stopwatch(sync).start()
    out = fn()
    return watch.lap(), out


def seconds(fn: Callable[[], Any], sync: Sync = no_sync) -> float:
    """Seconds of one call of ``fn``, device work included."""
    return timed(fn, sync)[0]


def repeat(measure: Callable[[], T], reps: int, warmup: int = 0) -> List[T]:
    """Call ``measure`` ``warmup`` times uncounted, then ``reps`` times; the ``reps`` results."""
    for _ in range(warmup):
        measure()
    return [measure() for _ in range(reps)]


def median_seconds(fn: Callable[[], Any], reps: int, warmup: int = 0,
                   sync: Sync = no_sync) -> float:
    """Median seconds of ``reps`` calls of ``fn`` after ``warmup`` uncounted ones."""
    return median(repeat(lambda: seconds(fn, sync), reps, warmup))


def interleave(measures: Sequence[Callable[[int], T]], rounds: int, pinned: int = 0
               ) -> List[List[T]]:
    """Call each measure once per round, with the round's index; results per measure.

    The first ``pinned`` measures run first in every round, in their order; the others rotate
    (round i starts with the i-th of them): with two, A B, B A, A B ... Returns
    ``results[measure][round]``.
    """
    fixed, turning = list(range(pinned)), list(range(pinned, len(measures)))
    results: List[List[T]] = [[] for _ in measures]
    for i in range(rounds):
        shift = i % len(turning) if turning else 0
        for k in fixed + turning[shift:] + turning[:shift]:
            results[k].append(measures[k](i))
    return results


def median(values: Sequence[float]) -> float:
    """Return the middle value, the mean of the middle two for an even count; NaN for none."""
    return float(np.median(values)) if len(values) else float('nan')


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile, linearly interpolated; NaN for no values."""
    return float(np.percentile(values, q)) if len(values) else float('nan')
