"""Segmenter: sizes, dtypes, batching, output selection, devices and precision."""

import math

import numpy as np
import pytest
import torch

from densehybrid_ros.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from densehybrid_ros.deploy.preprocess import inference_shape, resolve_device
from densehybrid_ros.deploy.segmenter import OUTPUTS, Segmenter
from densehybrid_ros.core.scoring import hybrid_score


def _images(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


@pytest.fixture(scope='module')
def segmenter(tiny_checkpoint):
    return Segmenter(tiny_checkpoint, device='cpu')


@pytest.mark.parametrize('inference_size', [None, 96, (48, 80)])
def test_outputs_match_each_image_size_and_dtype(tiny_checkpoint, inference_size):
    seg = Segmenter(tiny_checkpoint, device='cpu', inference_size=inference_size)
    shapes = [(37, 61), (64, 64), (101, 203), (37, 61)]
    for (h, w), r in zip(shapes, seg(_images(*shapes))):
        assert r.semantic.shape == (h, w) and r.semantic.dtype == np.uint8
        assert r.score.shape == (h, w) and r.score.dtype == np.float32
        assert r.open_set.shape == (h, w) and r.open_set.dtype == np.uint8
        assert r.anomaly_mask.shape == (h, w) and r.anomaly_mask.dtype == np.bool_
        assert r.semantic.max() < 19
        assert np.array_equal(r.anomaly_mask, r.score > seg.threshold)
        assert np.array_equal(r.open_set, np.where(r.anomaly_mask, 255, r.semantic))


def test_native_size_matches_a_direct_model_call(tiny_checkpoint, segmenter):
    image = _images((45, 70))[0]
    model, _ = load_checkpoint(tiny_checkpoint)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        logits, ood_logits = model(x)
    r = segmenter([image])[0]
    assert np.array_equal(r.semantic, logits.argmax(1)[0].numpy())
    assert np.allclose(r.score, hybrid_score(logits, ood_logits)[0].numpy(), atol=1e-4)


def test_batch_of_mixed_sizes_equals_one_by_one(segmenter):
    images = _images((40, 60), (52, 52), (40, 60), seed=3)
    together = segmenter(images)
    for image, r in zip(images, together):
        alone = segmenter([image])[0]
        assert np.array_equal(alone.semantic, r.semantic)
        assert np.allclose(alone.score, r.score, atol=1e-4)


@pytest.mark.parametrize('wanted', [('score',), ('semantic',), ('anomaly_mask', 'semantic')])
def test_only_requested_outputs_are_computed(segmenter, wanted):
    r = segmenter(_images((30, 50)), outputs=wanted)[0]
    for name in OUTPUTS:
        assert (getattr(r, name) is not None) == (name in wanted)


def test_threshold_from_checkpoint_and_runtime_change(segmenter):
    assert segmenter.threshold == -2.0 and segmenter.score_range == (-6.0, 1.0)
    image = _images((30, 50))
    score = segmenter(image, outputs=('score',))[0].score
    old = segmenter.threshold
    try:
        segmenter.threshold = float(np.median(score))
        mask = segmenter(image, outputs=('anomaly_mask',))[0].anomaly_mask
        assert 0.3 < mask.mean() < 0.7
        segmenter.threshold = math.nan             # uncalibrated: nothing flagged
        assert not segmenter(image, outputs=('anomaly_mask',))[0].anomaly_mask.any()
        with pytest.raises(ValueError, match='finite'):
            segmenter.threshold = math.inf
    finally:
        segmenter.threshold = old


@pytest.mark.parametrize('bad', [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((0, 10, 3), np.uint8), np.zeros((5, 5, 4), np.uint8)])
def test_bad_images_are_rejected_with_the_reason(segmenter, bad):
    with pytest.raises(ValueError, match='image 1 must be a non-empty H x W x 3 uint8'):
        segmenter(_images((8, 8)) + [bad])


@pytest.mark.parametrize('kwargs, match', [
    ({'device': 'cuda:7'}, 'CUDA is not available|does not exist'),
    ({'device': 'tpu'}, 'device'),
    ({'precision': 'fp8'}, 'precision must be one of'),
    ({'precision': 'fp16', 'device': 'cpu'}, 'fp16 needs a CUDA device'),
    ({'inference_size': -5}, 'inference width'),
    ({'score': 'energy'}, 'unknown score'),
])
def test_bad_settings_fail_at_construction(tiny_checkpoint, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Segmenter(tiny_checkpoint, **kwargs)


def test_auto_device_picks_what_exists():
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert resolve_device('auto').type == expected


def test_bf16_on_cpu_agrees_with_fp32(tiny_checkpoint, segmenter):
    seg16 = Segmenter(tiny_checkpoint, device='cpu', precision='bf16')
    image = _images((64, 96), seed=9)
    a, b = segmenter(image)[0], seg16(image)[0]
    assert np.mean(a.semantic == b.semantic) > 0.95
    assert np.corrcoef(a.score.ravel(), b.score.ravel())[0, 1] > 0.99


@pytest.mark.parametrize('shape, size, expected', [
    ((720, 1280), None, (720, 1280)), ((720, 1280), 640, (360, 640)),
    ((100, 150), 75, (50, 75)), ((720, 1280), (256, 512), (256, 512)), ((7, 9), 0, (7, 9)),
])
def test_inference_shape(shape, size, expected):
    assert inference_shape(shape, size) == expected


@pytest.mark.parametrize('shape, size, expected', [
    ((720, 1280), None, (576, 1024)), ((720, 1280), 0, (576, 1024)),   # native: capped
    ((256, 512), None, (256, 512)),                   # narrower than the cap: never upscaled
    ((720, 1280), 1280, (720, 1280)), ((256, 512), 1024, (512, 1024)),  # an explicit width wins
])
def test_native_inference_is_capped_at_the_models_widest_input(shape, size, expected):
    assert inference_shape(shape, size, max_native_width=1024) == expected


def test_segmenter_takes_the_cap_from_the_checkpoint(tiny_checkpoint):
    model, meta = load_checkpoint(tiny_checkpoint)
    seg = Segmenter.from_model(model, {**meta, 'max_inference_width': 64}, device='cpu')
    seen = []
    real = seg._run
    seg._run = lambda images, size, wanted: seen.append(size) or real(images, size, wanted)
    result = seg(_images((60, 120), seed=1))[0]
    assert seen == [(32, 64)] and result.semantic.shape == (60, 120)


@pytest.mark.parametrize('shape, size, expected', [
    ((8000, 8000), None, (1448, 1448)),          # 2 MiP by default, aspect kept
    ((1024, 2048), None, (1024, 2048)),          # Cityscapes' native size is within the bound
    ((3000, 4000), 0, (1254, 1672)), ((2000, 8000), 6000, (724, 2896)),
])
def test_inference_shape_is_bounded_by_default(shape, size, expected):
    h, w = inference_shape(shape, size)
    assert (h, w) == expected and h * w <= 2048 * 1024
    assert inference_shape(shape, size, max_pixels=0)[0] >= h          # 0 lifts the bound


def test_large_frame_runs_at_the_bound_and_answers_at_camera_size(tiny_checkpoint):
    seg = Segmenter(tiny_checkpoint, device='cpu', max_inference_pixels=64 * 96)
    seen = []
    seg.model.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape)))
    result = seg(_images((640, 960)))[0]
    assert seen == [(1, 3, 64, 96)]
    assert result.semantic.shape == result.score.shape == (640, 960)
    with pytest.raises(ValueError, match='max_inference_pixels must be >= 0'):
        Segmenter(tiny_checkpoint, device='cpu', max_inference_pixels=-1)


def test_model_with_non_finite_outputs_is_refused_at_load(tiny_checkpoint, tmp_path):
    model, meta = load_checkpoint(tiny_checkpoint)
    with torch.no_grad():
        model.logits_ood.conv.weight[0, 0] = float('nan')
    bad = tmp_path / 'nan.pt'
    save_checkpoint(bad, model, meta)
    with pytest.raises(CheckpointError, match=r'non-finite ood_logits .* weights are broken'):
        Segmenter(bad, device='cpu')
