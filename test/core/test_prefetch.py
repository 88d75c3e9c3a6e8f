"""Read-ahead thread: order, errors in the consumer, and a reader that stops when closed."""

import threading

import pytest

from densehybrid_ros.core.prefetch import prefetch


@pytest.mark.parametrize('depth', [0, 1, 3])
def test_prefetch_keeps_order_and_raises_in_the_consumer(depth) -> None:
    def items():
        yield from range(5)
        raise RuntimeError('broken at 5')

    got = []
    with pytest.raises(RuntimeError, match='broken at 5'):
        for item in prefetch(items(), depth):
            got.append(item)
    assert got == list(range(5))


def test_prefetch_stops_its_reader_when_closed() -> None:
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    frames = prefetch(items(), 2, name='test-reader')
    assert next(frames) == 0
    assert any(t.name == 'test-reader' for t in threading.enumerate())
    frames.close()
    assert not any(t.name == 'test-reader' for t in threading.enumerate())
    assert len(produced) < 10
