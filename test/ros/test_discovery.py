"""look_up: one try per participant, a new participant between tries, within the time limit."""

import time

from densehybrid_ros.ros.discovery import look_up


def test_a_try_that_finds_nothing_is_followed_by_a_renewal_and_another_try():
    tries, renewals = [], []

    def look(seconds):
        tries.append(seconds)
        return len(tries) == 3

    assert look_up(look, lambda: renewals.append(1), timeout=100.0, every=10.0)
    assert len(tries) == 3 and len(renewals) == 2
    assert all(9.9 < s <= 10.0 for s in tries)


def test_tries_stop_at_the_limit_and_the_last_one_is_not_followed_by_a_renewal():
    tries, renewals = [], []

    def look(seconds):
        tries.append(seconds)
        time.sleep(seconds)
        return False

    start = time.monotonic()
    assert not look_up(look, lambda: renewals.append(len(tries)), timeout=0.5, every=0.2)
    # tries of at most 0.2 s, a renewal between two tries only, the last try within the limit
    assert len(tries) >= 2 and all(0.0 <= s <= 0.2 for s in tries)
    assert renewals == list(range(1, len(tries)))
    assert time.monotonic() - start < 0.5 + 0.2 + 1.0


def test_found_at_once_needs_no_renewal():
    renewals = []
    assert look_up(lambda s: True, lambda: renewals.append(1), timeout=1.0)
    assert renewals == []
