"""Joint transforms keep image and label maps aligned."""

import numpy as np
import pytest

from densehybrid_ros.data.transforms import (RandomCrop, RandomFlip, RandomScale, resize_sample,
                                             train_transforms)


def _sample(h=20, w=30):
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.arange(w)[None, :]
    label = np.tile(np.arange(w, dtype=np.uint8)[None, :], (h, 1))
    return {'image': image, 'label': label, 'outlier': (label % 2).astype(np.uint8)}


@pytest.mark.parametrize('crop', [(10, 10), (20, 30), (32, 40)])
def test_crop_size_and_padding(crop):
    out = RandomCrop(crop)(_sample(), np.random.default_rng(0))
    assert out['image'].shape[:2] == crop and out['label'].shape == crop
    if crop[1] > 30:
        assert (out['label'][:, 30:] == 255).all() and (out['outlier'][:, 30:] == 0).all()
    valid = out['label'] != 255
    np.testing.assert_array_equal(out['image'][..., 0][valid], out['label'][valid])


def test_flip_moves_maps_with_image():
    out = RandomFlip(p=1.0)(_sample(), np.random.default_rng(0))
    np.testing.assert_array_equal(out['image'][..., 0], out['label'])
    assert out['label'][0, 0] == 29


@pytest.mark.parametrize('size', [(10, 15), (40, 60)])
def test_resize_uses_nearest_for_maps(size):
    out = resize_sample(_sample(), size)
    assert out['label'].shape == size
    assert set(np.unique(out['label'])) <= set(range(30))


def test_scale_and_pipeline():
    out = RandomScale((2.0, 2.0))(_sample(), np.random.default_rng(0))
    assert out['image'].shape[:2] == (40, 60)
    out = train_transforms((16, 16))(_sample(), np.random.default_rng(1))
    assert out['image'].shape == (16, 16, 3)
