"""The timing harness: warm-up runs uncounted, rotating rounds, the clock waits for the device."""

import math
import time

import pytest
import torch

from densehybrid_ros.tools.speed.harness import device_sync, interleave, median, \
    median_seconds, no_sync, percentile, repeat, seconds, Stopwatch, timed


def test_timed_returns_the_calls_result_and_its_wall_time(small_net):
    net, x = small_net, torch.rand(1, 3, 32, 48)
    with torch.inference_mode():
        t, out = timed(lambda: net(x))
        assert torch.equal(out, net(x))
    assert 0.0 < t < 5.0
    assert 0.03 <= seconds(lambda: time.sleep(0.03)) < 1.0


def test_the_clock_stops_only_after_the_devices_queued_work():
    calls = []

    def slow_device() -> None:            # stands for torch.cuda.synchronize on queued work
        calls.append('sync')
        time.sleep(0.05)

    t = seconds(lambda: calls.append('run'), sync=slow_device)
    assert calls == ['sync', 'run', 'sync']         # before starting and before stopping
    assert t >= 0.05                                # the device's work is in the figure


def test_stopwatch_gives_wall_and_process_cpu_time(small_net):
    watch = Stopwatch().start()
    time.sleep(0.1)                                 # wall time, (almost) no CPU
    wall, cpu = watch.lap(), watch.cpu()
    assert wall >= 0.1 and cpu < 0.5 * wall
    net, x = small_net, torch.rand(4, 3, 64, 64)
    watch = Stopwatch().start()
    with torch.inference_mode():
        for _ in range(5):
            net(x)
    assert watch.cpu() > 0.0


def test_warm_up_calls_run_but_are_not_counted():
    count = iter(range(100))
    assert repeat(lambda: next(count), 3, warmup=2) == [2, 3, 4]
    calls = []
    t = median_seconds(lambda: calls.append(1), reps=4, warmup=1)
    assert len(calls) == 5 and t >= 0.0


def test_two_sides_alternate_and_a_pinned_measure_leads_every_round():
    order = []

    def measure(name: str):
        return lambda i: order.append(name) or f'{name}{i}'

    results = interleave([measure('a'), measure('b')], 4)
    assert ''.join(order) == 'abbaabba'
    assert results == [['a0', 'a1', 'a2', 'a3'], ['b0', 'b1', 'b2', 'b3']]
    order.clear()
    interleave([measure('p'), measure('a'), measure('b'), measure('c')], 3, pinned=1)
    assert ''.join(order) == 'pabc' 'pbca' 'pcab'        # each side in each place in turn
    order.clear()
    interleave([measure('a'), measure('b')], 2, pinned=2)
    assert ''.join(order) == 'abab'


def test_paired_ratios_of_two_real_models_in_rounds(small_net):
    small, x = small_net, torch.rand(1, 3, 32, 32)
    large = torch.nn.Sequential(*[torch.nn.Conv2d(3, 3, 3, padding=1) for _ in range(20)])
    with torch.inference_mode():
        fast, slow = interleave([lambda i: seconds(lambda: small(x)),
                                 lambda i: seconds(lambda: large(x))], 3)
    assert len(fast) == len(slow) == 3 and min(fast + slow) > 0.0
    assert math.isfinite(median([s / f for s, f in zip(slow, fast)]))


def test_medians_and_percentiles():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0]) == 2.5                      # the mean of the middle two
    assert math.isnan(median([])) and math.isnan(percentile([], 50))
    assert percentile([0.0, 10.0], 25) == 2.5


def test_only_a_cuda_device_waits():
    assert device_sync(torch.device('cpu')) is no_sync
    assert device_sync(torch.device('cuda', 0)) is not no_sync
    if torch.cuda.is_available():
        device_sync(torch.device('cuda', 0))()
    else:
        with pytest.raises((AssertionError, RuntimeError)):
            device_sync(torch.device('cuda', 0))()
