"""Clear errors: missing runtime, unsupported precision, artifacts for another size or model."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from densehybrid_ros.deploy.backends import BackendError
from densehybrid_ros.models.checkpoint import save_checkpoint
from densehybrid_ros.deploy.artifacts import export_checkpoint
from densehybrid_ros.deploy.runtimes import ExportError
from densehybrid_ros.deploy.segmenter import Segmenter
from densehybrid_ros.models import build_model


@pytest.mark.parametrize('backend, precision', [
    ('onnxruntime', 'int8'), ('onnxruntime', 'bf16'), ('openvino', 'fp16'), ('torch', 'int8'),
])
def test_unsupported_precision(tiny_checkpoint, backend, precision):
    with pytest.raises(ValueError, match=f'precision must be one of .* for the {backend}'):
        Segmenter(tiny_checkpoint, device='cpu', backend=backend, precision=precision)


def test_unknown_backend(tiny_checkpoint):
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        Segmenter(tiny_checkpoint, backend='tensorflow')


def test_onnxruntime_fp16_needs_cuda(tiny_checkpoint):
    with pytest.raises(BackendError, match='fp16 runs on CUDA only'):
        Segmenter(tiny_checkpoint, device='cpu', backend='onnxruntime', precision='fp16')


@pytest.mark.parametrize('backend, module', [('onnxruntime', 'onnxruntime'),
                                             ('openvino', 'openvino')])
def test_missing_runtime_package(tiny_checkpoint, backend, module):
    script = textwrap.dedent(f'''
        import sys

        sys.modules[{module!r}] = None        # as if not installed: import raises ImportError
        from densehybrid_ros.deploy.segmenter import Segmenter
        try:
            Segmenter({str(tiny_checkpoint)!r}, device='cpu', backend={backend!r})
        except ValueError as exc:
            print(exc)
    ''')
    proc = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"needs the Python package '{module}'" in proc.stdout
    assert 'requirements/deploy.txt' in proc.stdout


@pytest.fixture(scope='module')
def ov_artifact(tiny_checkpoint, tmp_path_factory):
    """An OpenVINO fp32 artifact of the tiny checkpoint at 64x96."""
    out = tmp_path_factory.mktemp('art') / 'ov'
    export_checkpoint(tiny_checkpoint, 'openvino', (64, 96), out)
    return out


def test_given_artifact_runs_and_refuses_other_sizes(tiny_checkpoint, ov_artifact):
    seg = Segmenter(tiny_checkpoint, device='cpu', backend='openvino', artifacts=[ov_artifact])
    seg.inference_size = (64, 96)
    assert seg([np.zeros((128, 192, 3), np.uint8)])[0].score.shape == (128, 192)
    seg.inference_size = None
    with pytest.raises(BackendError, match=r'no openvino artifact for inference size 96x144 '
                                           r'\(artifacts for: 64x96\)'):
        seg([np.zeros((96, 144, 3), np.uint8)])


def test_artifact_of_another_model(tmp_path, ov_artifact):
    torch.manual_seed(99)
    other = tmp_path / 'other.pt'
    save_checkpoint(other, build_model('ladder_resnet18_half', 19), {})
    with pytest.raises(BackendError, match='artifact is for another model'):
        Segmenter(other, device='cpu', backend='openvino', artifacts=[ov_artifact])


def test_artifact_of_another_runtime_or_precision(tiny_checkpoint, ov_artifact):
    with pytest.raises(BackendError, match='openvino artifact cannot run on the onnxruntime'):
        Segmenter(tiny_checkpoint, device='cpu', backend='onnxruntime',
                  artifacts=[ov_artifact])
    with pytest.raises(BackendError, match="artifact precision is 'fp32', asked for 'int8'"):
        Segmenter(tiny_checkpoint, device='cpu', backend='openvino', precision='int8',
                  artifacts=[ov_artifact])


def test_not_an_artifact(tiny_checkpoint, tmp_path):
    with pytest.raises(ExportError, match='not an export artifact'):
        Segmenter(tiny_checkpoint, device='cpu', backend='openvino', artifacts=[tmp_path])


def test_int8_is_not_exported_lazily(tiny_checkpoint):
    seg = Segmenter(tiny_checkpoint, device='cpu', backend='openvino', precision='int8')
    with pytest.raises(ExportError, match='int8 is not exported lazily'):
        seg([np.zeros((64, 96, 3), np.uint8)])
