"""densehybrid-bench backends: one worker process per runtime, figures per backend/precision."""

import json
import subprocess
import sys


def test_backends_are_timed_side_by_side_with_accuracy(tmp_path):
    out = tmp_path / 'b.json'
    proc = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.speed.bench', 'backends', '--archs',
         'ladder_resnet18_half', '--size', '64', '96', '--rounds', '3', '--threads', '1',
         '--precisions', 'fp32', 'bf16', '--json', str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())['backends']['ladder_resnet18_half']
    assert set(figures) == {'torch', 'onnxruntime', 'openvino'}
    assert set(figures['openvino']) == {'fp32', 'bf16'}
    torch_fp32 = figures['torch']['fp32']
    assert torch_fp32['label_agreement'] == 1.0 and torch_fp32['score_max_abs_diff'] == 0.0
    for backend, precision in (('onnxruntime', 'fp32'), ('openvino', 'fp32')):
        f = figures[backend][precision]
        assert set(f) == {'ms', 'speedup', 'label_agreement', 'score_max_abs_diff'}
        assert f['ms'] > 0 and f['speedup'] > 0
        assert f['label_agreement'] >= 0.9999 and f['score_max_abs_diff'] <= 1e-3
    assert figures['openvino']['bf16']['label_agreement'] >= 0.95


def test_a_worker_that_cannot_start_is_one_error_line():
    proc = subprocess.run(
        [sys.executable, '-m', 'densehybrid_ros.tools.speed.bench', 'backends', '--archs',
         'no_such', '--backends', 'torch', '--size', '64', '96', '--rounds', '1'],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert 'densehybrid-bench backends: error: bench worker torch/fp32: ValueError: unknown ' \
        'arch' in proc.stderr
    assert 'Traceback' not in proc.stderr.split('densehybrid-bench backends: error:')[-1]
