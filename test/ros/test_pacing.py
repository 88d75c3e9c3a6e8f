"""The overload pacing rule: when a waiting frame is worth processing (pure Python, no ROS)."""

import numpy as np
import pytest

from densehybrid_ros.ros.pacing import FramePeriod, fresh_wait


@pytest.mark.parametrize('age, period, expected', [
    (0.00, 0.10, 0.0),          # just arrived
    (0.03, 0.10, 0.0),          # younger than a third of the period: take it
    (0.05, 0.10, 0.075),        # stale: the next frame is due in 50 ms, + 25 ms of slack
    (0.09, 0.10, 0.035),
    (0.13, 0.10, 0.0),          # next frame overdue (camera slowed down): take this one
    (0.50, None, 0.0),          # period unknown: never wait
    (0.50, 0.0, 0.0),
])
def test_fresh_wait(age, period, expected):
    assert fresh_wait(age, period) == pytest.approx(expected)


def test_frame_period_is_a_robust_median():
    period = FramePeriod(window=5)
    assert period.period is None
    for t in (0.0, 0.1, 0.2):
        period.arrived(t)
    assert period.period == pytest.approx(0.1)
    period.arrived(5.0)                       # one pause does not change the estimate
    period.arrived(5.1)
    assert period.period == pytest.approx(0.1)
    period.arrived(5.1)                       # duplicate time stamps are ignored
    assert period.period == pytest.approx(0.1)


def simulate(period, work, frames, skip_stale, jitter=0.0, seed=0):
    """Latencies (arrival to publish) of a keep-newest worker with and without pacing."""
    rng = np.random.default_rng(seed)
    arrivals = np.arange(frames) * period + rng.uniform(0, jitter, frames)
    estimate = FramePeriod()
    latencies, t, i, seen = [], 0.0, 0, 0

    def newest(t, i, seen):
        while i + 1 < frames and arrivals[i + 1] <= t:
            i += 1
        for j in range(seen, i + 1):
            estimate.arrived(arrivals[j])
        return i, max(seen, i + 1)

    while i < frames:
        t = max(t, arrivals[i])                  # idle: the next frame is processed at once
        i, seen = newest(t, i, seen)
        if skip_stale:                           # as the node: wait until a newer frame or
            wait = fresh_wait(t - arrivals[i], estimate.period)        # the deadline
            if wait > 0:
                if i + 1 < frames and arrivals[i + 1] <= t + wait:
                    t = arrivals[i + 1]
                else:
                    t += wait
                i, seen = newest(t, i, seen)
        t += work
        latencies.append(t - arrivals[i])
        i += 1
    return np.array(latencies)


@pytest.mark.parametrize('rate_factor', [3.0, 1.7, 5.0])
def test_pacing_cuts_p95_latency_under_overload(rate_factor):
    work = 0.3
    period = work / rate_factor
    plain = simulate(period, work, 600, skip_stale=False, jitter=0.2 * period)
    paced = simulate(period, work, 600, skip_stale=True, jitter=0.2 * period)
    assert np.percentile(plain, 95) > work + 0.6 * period
    assert np.percentile(paced, 95) <= work + period / 3 + 0.2 * period
    assert len(paced) >= 0.75 * len(plain)       # output rate: a little lower at most


def test_pacing_changes_nothing_without_overload():
    work, period = 0.1, 0.25
    plain = simulate(period, work, 200, skip_stale=False, jitter=0.05)
    paced = simulate(period, work, 200, skip_stale=True, jitter=0.05)
    np.testing.assert_allclose(paced, plain)
