"""Each graph backend gives torch eager fp32's labels and score, through the Segmenter."""

import numpy as np
import pytest
import torch

from densehybrid_ros.deploy import artifacts
from densehybrid_ros.deploy.backends import make_backend
from densehybrid_ros.deploy.segmenter import Segmenter


def _images(seed, n=2, size=(64, 96)):
    rng = np.random.default_rng(seed)
    # Smooth images (a few random blobs) rather than white noise: closer to camera frames.
    base = rng.integers(0, 255, (n, size[0] // 8, size[1] // 8, 3), np.uint8)
    return [np.ascontiguousarray(np.kron(b, np.ones((8, 8, 1), np.uint8))) for b in base]


def _compare(model, backend, precision='fp32'):
    images = _images(5)
    ref = Segmenter.from_model(model, device='cpu')(images)
    seg = Segmenter.from_model(model, device='cpu', backend=backend, precision=precision)
    out = seg(images)
    agree = np.mean([(a.semantic == b.semantic).mean() for a, b in zip(out, ref)])
    diff = max(float(np.abs(a.score - b.score).max()) for a, b in zip(out, ref))
    return agree, diff


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_golden_ldn121_matches_torch(golden_ldn121, backend):
    agree, diff = _compare(golden_ldn121, backend)
    assert agree >= 0.9999 and diff <= 1e-3


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_random_weights_match_torch(random_ladder, backend):
    agree, diff = _compare(random_ladder, backend)
    assert agree >= 0.9999 and diff <= 1e-3


def test_openvino_bf16_stays_close(random_ladder):
    agree, diff = _compare(random_ladder, 'openvino', 'bf16')
    assert agree >= 0.98 and diff < 1.0


def test_lazy_export_is_cached_per_size(random_ladder, tmp_path, monkeypatch):
    monkeypatch.setenv('DENSEHYBRID_CACHE', str(tmp_path))
    export_cache = tmp_path / 'artifacts'
    seg = Segmenter.from_model(random_ladder, device='cpu', backend='onnxruntime')
    seg(_images(1))
    seg(_images(2, size=(96, 64)))
    assert sorted(p.name.split('_')[3] for p in export_cache.iterdir()) == ['64x96', '96x64']
    stamps = {p: p.stat().st_mtime_ns for p in export_cache.iterdir()}
    again = Segmenter.from_model(random_ladder, device='cpu', backend='onnxruntime')
    again(_images(3))
    assert {p: p.stat().st_mtime_ns for p in export_cache.iterdir()} == stamps   # reused
    # A graph of another export version (an older package's cache) is made again, not reused.
    monkeypatch.setattr(artifacts, 'GRAPH_VERSION', artifacts.GRAPH_VERSION + 1)
    Segmenter.from_model(random_ladder, device='cpu', backend='onnxruntime')(_images(3))
    made = set(export_cache.iterdir()) - set(stamps)
    assert len(made) == 1 and f'_g{artifacts.GRAPH_VERSION}_' in made.pop().name


def test_uint8_and_float_batches_agree(random_ladder):
    backend = make_backend('onnxruntime', model=random_ladder, meta={}, precision='fp32')
    x = torch.from_numpy(np.stack(_images(4))).permute(0, 3, 1, 2).contiguous()
    labels_u8, score_u8 = backend.infer(x)
    labels_f, score_f = backend.infer(x.float() / 255.0)
    assert torch.equal(labels_u8, labels_f) and torch.equal(score_u8, score_f)
    assert labels_u8.dtype == torch.uint8 and score_u8.dtype == torch.float32
