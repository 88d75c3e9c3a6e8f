"""Negative placement: paper default unchanged, log-uniform scale, on the road, occluded."""

import hashlib

import numpy as np
import pytest

from densehybrid_ros.data.negatives import NegativePaster, paste_negative, synthetic_paster
from densehybrid_ros.data.placement import Placement
from densehybrid_ros.data.placement import OCCLUDERS
from densehybrid_ros.data.synthetic import make_negative


def _street(h=120, w=160):
    """Sky above, road in the lower half, a car-labelled block standing on the road."""
    label = np.full((h, w), 10, np.uint8)
    label[h // 2:] = 0
    label[70:100, 60:100] = 13
    return {'image': np.full((h, w, 3), 90, np.uint8), 'label': label,
            'anomaly': np.zeros((h, w), np.uint8)}


def _negative(size=30):
    return {'image': np.full((size, size, 3), 240, np.uint8), 'mask': np.ones((size, size), bool)}


# sha256 (16 hex digits) of the pasted sample (keys sorted) made by paste_negative before
# placement existed: the default must keep the embedded model's training data unchanged.
PAPER_PASTES = [(0, '08fedf2ff5ffb73f'), (1, 'ca6768c618fcf188'), (2, 'b0d143adc6a45654')]


@pytest.mark.parametrize('seed, digest', PAPER_PASTES)
def test_default_placement_is_the_papers_uniform_paste(seed, digest):
    street = _street()
    street['image'] = (np.arange(120 * 160 * 3) % 251).astype(np.uint8).reshape(120, 160, 3)
    out = paste_negative(street, make_negative(seed, 'train', 48), np.random.default_rng(seed),
                         (0.1, 0.5))
    data = b''.join(np.ascontiguousarray(out[k]).tobytes() for k in sorted(out))
    assert hashlib.sha256(data).hexdigest()[:16] == digest


def test_log_uniform_scale_reaches_a_few_pixels():
    rng = np.random.default_rng(0)
    log = [Placement(log_scale=True).draw_scale(rng, (0.02, 0.5)) for _ in range(2000)]
    flat = [Placement().draw_scale(rng, (0.02, 0.5)) for _ in range(2000)]
    assert 0.02 <= min(log) and max(log) <= 0.5
    assert np.median(log) == pytest.approx(0.1, rel=0.15)      # geometric mean of the range
    assert np.mean(np.array(log) < 0.04) > 0.15 > np.mean(np.array(flat) < 0.04)


@pytest.mark.parametrize('seed', range(6))
def test_road_placement_stands_the_patch_on_the_road(seed):
    place = Placement(road=1.0)
    out = paste_negative(_street(), _negative(), np.random.default_rng(seed), (0.1, 0.3), place)
    ys, xs = np.nonzero(out['outlier'])
    assert ys.max() >= 60                             # the base is in the road half


@pytest.mark.parametrize('seed', range(6))
def test_occlusion_keeps_objects_in_front(seed):
    street = _street()
    out = paste_negative(street, _negative(60), np.random.default_rng(seed), (0.6, 0.9),
                         Placement(road=1.0, occlusion=1.0))
    front = np.isin(street['label'], OCCLUDERS)
    assert out['outlier'].any() and not (out['outlier'][front] == 1).any()
    assert (out['label'][front] == 13).all()


def test_synthetic_paster_uses_training_families_only():
    paster = synthetic_paster('varied', range(5), (0.05, 0.4))
    assert isinstance(paster, NegativePaster) and paster.placement == Placement.scene()
    out = paster(_street(), np.random.default_rng(1))
    assert out['outlier'].any() and (out['label'][out['outlier'] == 1] == 255).all()
    with pytest.raises(ValueError, match='not a training family'):
        synthetic_paster('solids', range(5), (0.05, 0.4))
