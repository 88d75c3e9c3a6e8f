"""Negative pasting semantics and negative-folder errors."""

import cv2
import numpy as np
import pytest

from densehybrid_ros.data.cityscapes import DatasetError
from densehybrid_ros.data.negatives import NegativeFolder, NegativePaster, paste_negative
from densehybrid_ros.data.negatives import SyntheticNegatives


def _inlier(h=40, w=60):
    return {'image': np.full((h, w, 3), 100, np.uint8),
            'label': np.full((h, w), 3, np.uint8),
            'anomaly': np.zeros((h, w), np.uint8)}


@pytest.mark.parametrize('mask_kind', ['rectangle', 'instance'])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_pasted_pixels_are_ignore_and_outlier(mask_kind, seed):
    neg_img = np.full((30, 30, 3), 250, np.uint8)
    negative = {'image': neg_img, 'mask': np.ones((30, 30), bool)}
    if mask_kind == 'instance':
        inst = np.zeros((30, 30), np.uint8)
        inst[5:15, 5:25] = 1
        inst[20:28, 2:10] = 2
        negative = {'image': neg_img, 'mask': inst > 0, 'instances': inst}
    sample = _inlier()
    out = paste_negative(sample, negative, np.random.default_rng(seed), scale=(0.2, 0.6))
    pasted = out['outlier'] == 1
    assert pasted.any()
    assert (out['label'][pasted] == 255).all() and (out['label'][~pasted] == 3).all()
    assert (out['anomaly'][pasted] == 1).all() and (out['anomaly'][~pasted] == 0).all()
    assert (out['image'][pasted] == 250).all() and (out['image'][~pasted] == 100).all()
    assert (sample['label'] == 3).all()                      # the input is not modified
    ys, xs = np.nonzero(pasted)
    assert ys.max() - ys.min() < 40 and xs.max() - xs.min() < 60


def test_paster_pastes_one_patch_per_sample():
    paster = NegativePaster(SyntheticNegatives(range(10)), scale=(0.3, 0.5))
    for seed in range(4):
        out = paster(_inlier(), np.random.default_rng(seed))
        n, _ = cv2.connectedComponents(out['outlier'])
        assert out['outlier'].sum() > 0 and n >= 2


def test_negative_folder_with_masks(tmp_path):
    (tmp_path / 'img').mkdir()
    (tmp_path / 'masks').mkdir()
    cv2.imwrite(str(tmp_path / 'img' / 'a.jpg'), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'img' / 'b.png'), np.zeros((10, 10, 3), np.uint8))
    mask = np.zeros((20, 30), np.uint8)
    mask[2:8, 3:9] = 4
    cv2.imwrite(str(tmp_path / 'masks' / 'a.png'), mask)
    ds = NegativeFolder(tmp_path / 'img', tmp_path / 'masks')
    assert len(ds) == 2
    assert ds[0]['mask'].sum() == 36 and ds[1]['mask'].all()


@pytest.mark.parametrize('case', ['missing', 'empty', 'only_text', 'mask_size'])
def test_negative_folder_errors(tmp_path, case):
    root = tmp_path / 'neg'
    masks = None
    if case != 'missing':
        root.mkdir()
    if case == 'only_text':
        (root / 'readme.txt').write_text('no images here')
    if case == 'mask_size':
        cv2.imwrite(str(root / 'a.png'), np.zeros((20, 30, 3), np.uint8))
        masks = tmp_path / 'm'
        masks.mkdir()
        cv2.imwrite(str(masks / 'a.png'), np.zeros((5, 5), np.uint8))
    with pytest.raises(DatasetError, match='neg|mask'):
        ds = NegativeFolder(root, masks)
        ds[0]
