"""backend auto (issue 24): the rule and the fallbacks (its timing: test_auto_timing)."""

import logging
import platform
import sys

import numpy as np
import pytest

from densehybrid_ros.deploy.runtimes import ExportError, resolve_auto
from densehybrid_ros.deploy.segmenter import Segmenter

X86 = platform.machine().lower() in ('x86_64', 'amd64')
IMAGE = np.random.default_rng(5).integers(0, 256, (40, 64, 3), np.uint8)


@pytest.fixture(scope='module')
def torch_result(tiny_checkpoint):
    """What torch eager fp32 gives on IMAGE: the reference of every auto run."""
    return Segmenter(tiny_checkpoint, device='cpu', backend='torch')([IMAGE])[0]


@pytest.mark.parametrize('precision, device, machine, openvino, cuda, runs, fallback', [
    ('fp32', 'cpu', 'x86_64', True, False, 'openvino', False),
    ('fp32', 'auto', 'AMD64', True, False, 'openvino', False),
    ('fp32', 'auto', 'x86_64', True, True, 'torch', False),         # CUDA present
    ('fp32', 'cuda:1', 'x86_64', True, False, 'torch', False),
    ('fp32', 'cpu', 'x86_64', False, False, 'torch', True),         # OpenVINO missing
    ('fp32', 'cpu', 'aarch64', True, False, 'torch', False),        # not x86: no warning
    ('bf16', 'cpu', 'x86_64', True, False, 'torch', False),         # explicit precisions
    ('int8', 'cpu', 'x86_64', True, False, 'openvino', False),
])
def test_the_rule(precision, device, machine, openvino, cuda, runs, fallback):
    choice = resolve_auto(precision, device, machine, openvino, cuda)
    assert (choice.backend, choice.fallback) == (runs, fallback)
    assert choice.reason and '\n' not in choice.reason
    if fallback:
        assert 'OpenVINO is not installed' in choice.reason


def test_given_artifacts_choose_their_runtime():
    assert resolve_auto('fp32', 'cpu', 'x86_64', True, False, ['onnx']).backend == 'onnxruntime'
    on_arm = resolve_auto('fp32', 'cpu', 'aarch64', False, True, ['openvino'])
    assert on_arm.backend == 'openvino'
    with pytest.raises(ExportError, match='cannot run together'):
        resolve_auto('fp32', 'cpu', 'x86_64', True, False, ['onnx', 'openvino'])


def test_a_cache_it_cannot_write_falls_back_to_torch_with_one_warning(
        tiny_checkpoint, torch_result, tmp_path, monkeypatch, caplog):
    """Any failure of the chosen graph runtime (here: its export cache is a file)."""
    choice = resolve_auto('fp32', 'cpu', platform.machine(), True, False)
    if choice.backend == 'torch':
        pytest.skip('auto runs torch here: nothing to fall back from')
    pytest.importorskip('openvino')
    (tmp_path / 'not_a_folder').write_text('')
    monkeypatch.setenv('DENSEHYBRID_CACHE', str(tmp_path / 'not_a_folder'))
    with caplog.at_level(logging.INFO, logger='densehybrid_ros'):
        seg = Segmenter(tiny_checkpoint, device='cpu', backend='auto')
        first, second = seg([IMAGE])[0], seg([IMAGE])[0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith('backend auto: openvino failed (') and \
        warnings[0].endswith('; falling back to torch eager fp32')
    assert seg.backend_name == 'torch'
    for result in (first, second):
        np.testing.assert_array_equal(result.score, torch_result.score)


def test_openvino_missing_is_torch_with_one_warning(tiny_checkpoint, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, 'openvino', None)     # as if not installed (find_spec)
    with caplog.at_level(logging.INFO, logger='densehybrid_ros'):
        seg = Segmenter(tiny_checkpoint, device='cpu', backend='auto')
    said = [(r.levelno, r.getMessage()) for r in caplog.records
            if r.getMessage().startswith('backend auto')]
    assert seg.backend_name == 'torch'
    if X86:
        assert said == [(logging.WARNING, 'backend auto: torch fp32 (OpenVINO is not installed '
                         '(requirements/deploy.txt): torch eager, the slowest exact runtime)')]
    else:
        assert [level for level, _ in said] == [logging.INFO]
