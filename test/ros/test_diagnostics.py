"""Per-camera counters, rates and status levels (pure; the live node test covers /diagnostics)."""

import pytest

pytest.importorskip('diagnostic_msgs')
from densehybrid_ros.ros.diagnostics import (  # noqa: E402
    camera_status, CameraStats, ERROR, OK, values_of, WARN)


class FakeClock:
    """Manually advanced monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rates_counts_and_latency_per_period():
    clock = FakeClock()
    stats = CameraStats(clock)
    for _ in range(10):
        stats.frame_received()
    for _ in range(4):
        stats.frame_dropped()
    for latency in (0.1, 0.3):
        stats.frame_processed(latency)
    stats.frame_processed(None)           # unstamped frame: counted, no latency
    stats.bad_message('undecodable')
    clock.now += 2.0
    report = stats.report()
    assert report.input_hz == pytest.approx(5.0)
    assert report.processed_hz == pytest.approx(1.5)
    assert (report.received, report.processed, report.dropped) == (10, 3, 4)
    assert report.latency_ms_mean == pytest.approx(200.0)
    assert report.latency_ms_max == pytest.approx(300.0)
    assert report.bad == {'undecodable': 1} and report.bad_in_period == 1
    clock.now += 1.0
    second = stats.report()
    assert second.input_hz == 0 and second.processed_hz == 0 and second.bad_in_period == 0
    assert second.dropped == 4                       # totals persist across reports


def test_silent_camera_is_error_and_bad_messages_warn():
    clock = FakeClock()
    stats = CameraStats(clock)
    clock.now += 3.0                                 # never received anything since activation
    status = camera_status('/dh', '/cam/image', stats.report(), 2.0, ['semantic'])
    assert status.level == ERROR and 'no frame' in status.message
    stats.frame_received()
    stats.bad_message('data_too_short')
    status = camera_status('/dh', '/cam/image', stats.report(), 2.0, [])
    assert status.level == WARN
    values = values_of(status)
    assert values['bad_messages.data_too_short'] == '1'
    assert values['topic'] == '/cam/image' and values['outputs_subscribed'] == 'none'
    stats.frame_received()
    stats.frame_processed(0.05)
    clock.now += 1.0
    status = camera_status('/dh', '/cam/image', stats.report(), 2.0, ['overlay'])
    assert status.level == OK
    assert {'input_hz', 'processed_hz', 'frames_dropped', 'latency_ms_mean',
            'bad_messages'} <= set(values_of(status))


def test_sequence_gaps_count_frames_that_never_arrived():
    stats = CameraStats(FakeClock())
    for number in (1, 2, 5, 6, 10, None, 11):     # 3, 4 and 7..9 lost on the way
        stats.sequence(number)
    assert stats.missed == 5
    stats.sequence(1)                             # publisher restarted: a reset, not a gap
    stats.sequence(2)
    assert stats.report().missed == 5


def test_a_silent_camera_says_what_the_graph_shows():
    clock = FakeClock()
    stats = CameraStats(clock)
    clock.now += 3.0

    def message(publishers):
        return camera_status('/dh', '/cam/image', stats.report(), 2.0, [],
                             publishers=publishers).message

    assert 'no publisher of this topic found' in message(0)
    assert '2 publisher(s) found, no frame delivered' in message(2)
    assert message(None).endswith('(timeout 2 s)')       # the graph not asked: no guess
    stats.incompatible_qos('RELIABILITY')
    stats.incompatible_qos('DURABILITY', 2)
    status = camera_status('/dh', '/cam/image', stats.report(), 2.0, [], publishers=3)
    assert status.level == ERROR
    assert status.message.endswith('cannot match: DURABILITY, RELIABILITY (see '
                                   'input_reliability)')
    values = values_of(status)
    assert (values['publishers'], values['incompatible_qos_publishers'],
            values['incompatible_qos.RELIABILITY'], values['incompatible_qos.DURABILITY']) == (
        '3', '3', '1', '2')
    stats.frame_received()                           # frames arrive: the cause is not guessed
    assert 'publisher' not in camera_status('/dh', '/cam/image', stats.report(), 2.0, [],
                                            publishers=0).message
