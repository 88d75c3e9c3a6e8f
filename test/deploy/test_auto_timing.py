"""backend auto on the CPU at fp32: torch and OpenVINO timed once per size, the choice recorded.

One real export (the module's fixture, about 8 s idle, 20 s on a busy 2-core CPU); every other
test runs on a copy of its cache folder, so only OpenVINO's compile is paid again (the tiny
model at 40x64: about 0.3 s).
"""

import json
import logging
import platform
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from densehybrid_ros.deploy import auto_timing
from densehybrid_ros.deploy.segmenter import Segmenter

IMAGE = np.random.default_rng(5).integers(0, 256, (40, 64, 3), np.uint8)
SIZE = (40, 64)
LINE = re.compile(r'^backend auto at 40x64: torch fp32 (\d+) ms, openvino fp32 (\d+) ms: '
                  r'(torch|openvino)$')

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ('x86_64', 'amd64'),
                                reason='auto times OpenVINO on x86 CPUs only')


class Lines(logging.Handler):
    """The records the package logs while it is attached, as (level, message)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelno, record.getMessage()))


def segment(cache, checkpoint, backend='auto', images=(IMAGE,)):
    """A Segmenter made and run with ``cache`` as the export cache; it and what it logged."""
    logger, handler = logging.getLogger('densehybrid_ros'), Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv('DENSEHYBRID_CACHE', str(cache))
            seg = Segmenter(checkpoint, device='cpu', backend=backend)
            results = [seg([image])[0] for image in images]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return seg, results, handler.lines


@pytest.fixture(scope='module')
def torch_result(tiny_checkpoint):
    """What torch eager fp32 gives on IMAGE: the reference of every auto run."""
    return Segmenter(tiny_checkpoint, device='cpu', backend='torch')([IMAGE])[0]


@pytest.fixture(scope='module')
def timed(tiny_checkpoint, tmp_path_factory):
    """The module's one export and timing: two frames of one size through backend auto."""
    pytest.importorskip('openvino')
    cache = tmp_path_factory.mktemp('auto_cache')
    seg, results, lines = segment(cache, tiny_checkpoint, images=(IMAGE, IMAGE))
    records = sorted((cache / 'artifacts').glob('auto_*.json'))
    return SimpleNamespace(cache=cache, seg=seg, results=results, lines=lines, records=records)


def copy_cache(timed, tmp_path):
    """A copy of the timed cache (the graphs and the record) and its record's path there."""
    cache = tmp_path / 'cache'
    shutil.copytree(timed.cache, cache)
    return cache, cache / 'artifacts' / timed.records[0].name


def auto_lines(lines):
    return [line for line in lines if line[1].startswith('backend auto at')]


def test_auto_times_once_records_it_and_gives_the_torch_score(timed, torch_result):
    decision = timed.seg.auto_decisions[SIZE]
    assert not decision.recorded and decision.candidate == 'openvino'
    assert timed.seg.backend_name == decision.backend
    for got in timed.results:
        assert np.abs(got.score - torch_result.score).max() <= 1e-4
        assert np.array_equal(got.semantic, torch_result.semantic)
    said = auto_lines(timed.lines)                        # the second frame: not timed again
    assert len(said) == 1 and said[0][0] == logging.INFO, timed.lines
    torch_ms, openvino_ms, chosen = LINE.match(said[0][1]).groups()
    assert chosen == decision.backend
    assert (int(torch_ms), int(openvino_ms)) == (round(decision.torch_ms),
                                                 round(decision.candidate_ms))
    assert chosen == ('openvino' if decision.candidate_ms < decision.torch_ms else 'torch')
    exports = [line for line in timed.lines if 'export' in line[1]]
    assert [level for level, _ in exports] == [logging.INFO] * 2, timed.lines
    assert exports[0][1].startswith('exporting the openvino fp32 graph for inference size '
                                    '40x64 (not in the cache')
    assert len(timed.records) == 1
    record = json.loads(timed.records[0].read_text())
    assert (record['backend'], record['torch_ms'], record['candidate_ms']) == (
        decision.backend, decision.torch_ms, decision.candidate_ms)
    assert record['key']['input_size'] == list(SIZE) and record['key']['versions']['openvino']


@pytest.mark.parametrize('backend', ['openvino', 'torch'])
def test_a_record_decides_without_timing(timed, tiny_checkpoint, torch_result, tmp_path,
                                         backend):
    """The record's content drives the choice: the times below were never measured."""
    cache, path = copy_cache(timed, tmp_path)
    record = json.loads(path.read_text())
    record.update(backend=backend, torch_ms=9999.0 if backend == 'openvino' else 1.0,
                  candidate_ms=1.0 if backend == 'openvino' else 9999.0)
    if backend == 'torch':                 # only the record: torch never makes the graph
        shutil.rmtree(cache)
        path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    seg, (got,), lines = segment(cache, tiny_checkpoint)
    assert seg.backend_name == backend and seg.auto_decisions[SIZE].recorded
    times = '9999 ms, openvino fp32 1 ms' if backend == 'openvino' else \
        '1 ms, openvino fp32 9999 ms'
    assert auto_lines(lines) == [(logging.INFO, f'backend auto at 40x64: torch fp32 {times}: '
                                  f'{backend} (recorded, not timed again)')]
    assert json.loads(path.read_text()) == record                        # not rewritten
    assert np.abs(got.score - torch_result.score).max() <= 1e-4
    if backend == 'torch':
        np.testing.assert_array_equal(got.score, torch_result.score)
        assert not any('export' in message for _, message in lines)
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_a_corrupt_record_is_timed_again(timed, tiny_checkpoint, torch_result, tmp_path):
    cache, path = copy_cache(timed, tmp_path)
    path.write_bytes(b'{"key": {"format": ')
    seg, (got,), lines = segment(cache, tiny_checkpoint)
    decision = seg.auto_decisions[SIZE]
    warnings = [message for level, message in lines if level == logging.WARNING]
    assert warnings == [f'backend auto: ignoring the unreadable record {path} (JSONDecodeError: '
                        f'Expecting value: line 1 column 20 (char 19)); timing again']
    assert not decision.recorded and LINE.match(auto_lines(lines)[0][1])
    assert json.loads(path.read_text())['backend'] == decision.backend == seg.backend_name
    assert np.abs(got.score - torch_result.score).max() <= 1e-4


@pytest.mark.parametrize('content, why', [
    (b'\xff\xfe{', 'UnicodeDecodeError'), (b'[]', 'TypeError'), (b'{}', 'KeyError'),
    ({'backend': 'tensorflow'}, "backend 'tensorflow' is neither torch nor the candidate"),
    ({'candidate_ms': -1.0}, 'time -1.0 is not a duration'),
    ({'candidate_ms': None}, 'a decision on times without the times'),
    ({'backend': 'openvino', 'score_diff': 0.5}, 'openvino chosen with scores 0.5 off'),
    ({'key': {'torch_threads': 99}}, None),        # another key's: timed again, no warning
    (None, None),                                  # no record
])
def test_records_that_cannot_decide(timed, tmp_path, caplog, content, why):
    """Every record that read_record refuses: None, a WARN naming why where it is broken."""
    good = json.loads(timed.records[0].read_text())
    key = good['key']
    path = tmp_path / timed.records[0].name
    if isinstance(content, dict):
        content = json.dumps(dict(good, **content)).encode()
    if content is not None:
        path.write_bytes(content)
    with caplog.at_level(logging.INFO, logger='densehybrid_ros'):
        assert auto_timing.read_record(path, key) is None
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    if why is None:
        assert said == []
    else:
        assert len(said) == 1 and said[0][0] == logging.WARNING and why in said[0][1], said
    path.write_text(json.dumps(good))                 # the same file, intact: it decides
    assert auto_timing.read_record(path, key).backend == good['backend']


def test_scores_that_differ_run_torch_with_one_warning(timed, tiny_checkpoint, torch_result,
                                                       tmp_path, monkeypatch):
    """A tolerance no runtime meets (below 0) stands for a runtime that scores differently."""
    cache, path = copy_cache(timed, tmp_path)
    path.unlink()
    monkeypatch.setattr(auto_timing, 'SCORE_TOLERANCE', -1.0)
    seg, (got,), lines = segment(cache, tiny_checkpoint)
    warnings = [message for level, message in lines if level == logging.WARNING]
    assert len(warnings) == 1 and re.match(
        r'^backend auto at 40x64: openvino fp32 scores differ from torch fp32 by '
        r'\d\.\de[-+]\d\d \(more than -1\): torch$', warnings[0]), warnings
    assert seg.backend_name == 'torch'
    np.testing.assert_array_equal(got.score, torch_result.score)
    assert json.loads(path.read_text())['backend'] == 'torch'


def test_an_explicit_runtime_is_not_timed(timed, tiny_checkpoint, torch_result, tmp_path):
    cache, path = copy_cache(timed, tmp_path)
    path.unlink()
    seg, (got,), lines = segment(cache, tiny_checkpoint, backend='openvino')
    assert seg.backend_name == 'openvino' and seg.auto_decisions == {}
    assert not auto_lines(lines) and not path.exists()
    assert np.abs(got.score - torch_result.score).max() <= 1e-4
